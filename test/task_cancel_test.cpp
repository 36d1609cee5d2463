// SPDX-License-Identifier: Apache-2.0
// Tests of the tasks' cancellation at shutdown: every task parked in the
// channel is woken with operation_canceled and unwinds, and waits after the
// shutdown fail at once, so that the shutdown finishes.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/task_reports.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::ConditionVariable;
using evchan::EventChannel;
using evchan::Mutex;
using evchan::Notification;
using evchan::SystemError;
using evchan::TaskHandle;
using evchan::test::EndWitness;
using evchan::test::describe;
using evchan::test::eventually;
using evchan::test::makeChannel;

// Shuts the channel down from another thread and fails (rather than hang
// the suite) when that does not finish in time.
void shutdownWithin(EventChannel& channel, std::chrono::seconds patience) {
  std::future<void> done = std::async(std::launch::async, [&] { channel.shutdown(); });
  if (done.wait_for(patience) != std::future_status::ready) {
    std::fprintf(stderr, "shutdown() did not finish within %lld s: tasks were not cancelled\n",
                 static_cast<long long>(patience.count()));
    std::abort();  // a hang cannot be reported any other way
  }
  done.get();
}

// join() rethrows what ended the task: operation_canceled is expected.
std::string endOf(TaskHandle& task) {
  try {
    task.join();
    return "returned";
  } catch (const SystemError& e) {
    return e.code() == std::errc::operation_canceled ? "cancelled" : "SystemError " + describe(e.code());
  } catch (...) {
    return "another exception";
  }
}

}  // namespace

class TaskCancelTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(TaskCancelTest);
  CPPUNIT_TEST(testShutdownUnwindsTasksParkedEverywhere);
  CPPUNIT_TEST(testWaitsAfterShutdownFailAtOnce);
  CPPUNIT_TEST(testDestroyingTheChannelUnwindsParkedTasks);
  CPPUNIT_TEST(testSignalRacingShutdownIsNotLost);
  CPPUNIT_TEST(testShutdownUnwindsTasksJoiningEachOther);
  CPPUNIT_TEST(testJoinAcrossChannelsIsCancelledWithItsOwnChannel);
  CPPUNIT_TEST(testJoinAfterShutdownFailsAtOnce);
  CPPUNIT_TEST(testCancelEndsTheWaitInProgressEverywhere);
  CPPUNIT_TEST(testCancelBeforeAWaitFailsTheNextOne);
  CPPUNIT_TEST(testCancelAfterTheEndTwiceAndFromInside);
  CPPUNIT_TEST(testCancelLetsALockWaitFinish);
  CPPUNIT_TEST(testCancelledTaskCleanUpMayTakeAContendedLock);
  CPPUNIT_TEST(testShieldDefersCancellation);
  CPPUNIT_TEST(testCancelRacingCompletion);
  CPPUNIT_TEST(testCancelRacingANotification);
  CPPUNIT_TEST(testTwoCancelsRacingTheWaitsOwnEnd);
  CPPUNIT_TEST(testJoinEndedByTheFirstOfEndCancelAndShutdown);
  CPPUNIT_TEST_SUITE_END();

 public:
  // Tasks parked on a timer, in loops of sleeps and of yields, on a Mutex a
  // thread holds, on a ConditionVariable and a Notification nobody
  // signals, and in readSome on a silent socket: shutdown() wakes each with
  // operation_canceled, each unwinds, and the shutdown finishes.
  void testShutdownUnwindsTasksParkedEverywhere() {
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    std::atomic<int> started{0};
    std::atomic<int> unwound{0};
    Mutex heldByThread;
    heldByThread.lock();
    Mutex conditionMutex;
    ConditionVariable condition;
    Notification neverNotified;
    evchan::test::ConnectedPair pair = evchan::test::connectPair();

    const std::vector<std::pair<std::string, std::function<void()>>> waits = {
        {"sleepFor", [] { evchan::this_task::sleepFor(1h); }},
        {"sleep loop", [] { for (;;) evchan::this_task::sleepFor(2ms); }},
        {"yield loop", [] { for (;;) evchan::this_task::yield(); }},
        {"Mutex::lock", [&] { std::lock_guard<Mutex> lock(heldByThread); }},
        {"ConditionVariable::wait",
         [&] {
           std::unique_lock<Mutex> lock(conditionMutex);
           condition.wait(lock, [] { return false; });
         }},
        {"Notification::wait", [&] { neverNotified.wait(); }},
        {"readSome",
         [&] {
           char byte;
           pair.server.readSome(&byte, 1);
         }},
    };
    std::vector<TaskHandle> tasks;
    for (const auto& wait : waits) {
      tasks.push_back(channel->spawn([&started, &unwound, &wait] {
        EndWitness witness{unwound};  // counts the stacks unwound past it
        ++started;
        wait.second();
      }));
    }
    CPPUNIT_ASSERT(eventually([&] { return started.load() == static_cast<int>(waits.size()); }));
    // Parked: every task has started, and every worker but the one the
    // yield loop keeps busy is idle (the sleep loop parks between sleeps).
    CPPUNIT_ASSERT(evchan::test::eventually([&] {
      const evchan::ThreadPoolStats stats = channel->poolStats();
      return stats.idle == stats.current - 1;
    }));

    shutdownWithin(*channel, 20s);
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      CPPUNIT_ASSERT_EQUAL_MESSAGE(waits[i].first, std::string("cancelled"), endOf(tasks[i]));
    }
    CPPUNIT_ASSERT_EQUAL(static_cast<int>(waits.size()), unwound.load());
    heldByThread.unlock();
  }

  // A task that catches the cancellation finds every later wait failing
  // at once, while what never waits (an uncontended lock) still works.
  void testWaitsAfterShutdownFailAtOnce() {
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    Notification parked;
    std::vector<std::string> seen;
    TaskHandle task = channel->spawn([&] {
      const auto record = [&](const char* what, const std::function<void()>& call) {
        try {
          call();
          seen.push_back(std::string(what) + " returned");
        } catch (const SystemError& e) {
          seen.push_back(std::string(what) + (e.code() == std::errc::operation_canceled ? " cancelled" : " failed"));
        }
      };
      record("first sleep", [&] {
        parked.notify();
        evchan::this_task::sleepFor(1h);
      });
      record("sleep", [] { evchan::this_task::sleepFor(1ms); });
      record("yield", [] { evchan::this_task::yield(); });
      record("uncontended lock", [] {
        Mutex mutex;
        std::lock_guard<Mutex> lock(mutex);
      });
      record("notification wait", [] {
        Notification notification;
        notification.waitFor(1h);
      });
    });
    CPPUNIT_ASSERT(parked.waitFor(8s));
    shutdownWithin(*channel, 20s);
    task.join();
    const std::vector<std::string> expected = {"first sleep cancelled", "sleep cancelled", "yield cancelled",
                                               "uncontended lock returned", "notification wait cancelled"};
    CPPUNIT_ASSERT(expected == seen);
  }

  // The channel's destructor is a shutdown: parked tasks unwind, and their
  // handles still join after the channel is gone.
  void testDestroyingTheChannelUnwindsParkedTasks() {
    std::atomic<int> unwound{0};
    Notification neverNotified;
    std::vector<TaskHandle> tasks;
    {
      std::unique_ptr<EventChannel> channel = makeChannel(2);
      std::atomic<int> started{0};
      for (int i = 0; i < 50; ++i) {
        tasks.push_back(channel->spawn([&, i] {
          EndWitness witness{unwound};
          ++started;
          if (i % 2 == 0) neverNotified.wait(); else evchan::this_task::sleepFor(1h);
        }));
      }
      CPPUNIT_ASSERT(eventually([&] { return started.load() == 50; }));
    }
    for (TaskHandle& task : tasks) CPPUNIT_ASSERT_EQUAL(std::string("cancelled"), endOf(task));
    CPPUNIT_ASSERT_EQUAL(50, unwound.load());
  }

  // A Mutex handed over by a thread at the moment of the shutdown: the task
  // either owns it (and returns normally) or is cancelled and was taken off
  // the queue; the lock is never lost, so the thread can take it again.
  void testSignalRacingShutdownIsNotLost() {
    for (int round = 0; round < 50; ++round) {
      std::unique_ptr<EventChannel> channel = makeChannel(2);
      Mutex mutex;
      std::atomic<bool> held{false}, waiting{false}, release{false};
      // The holder is a thread of its own: only the owner may unlock, and
      // its unlock must race the shutdown.
      std::thread holder([&] {
        mutex.lock();
        held = true;
        while (!release.load()) std::this_thread::yield();
        mutex.unlock();
      });
      CPPUNIT_ASSERT(eventually([&] { return held.load(); }));
      TaskHandle task = channel->spawn([&] {
        waiting = true;
        mutex.lock();
        mutex.unlock();
      });
      CPPUNIT_ASSERT(eventually([&] { return waiting.load(); }));
      release = true;
      channel->shutdown();
      holder.join();
      const std::string end = endOf(task);
      CPPUNIT_ASSERT_MESSAGE(end, end == "returned" || end == "cancelled");
      CPPUNIT_ASSERT_MESSAGE("the lock was lost at round " + std::to_string(round), mutex.try_lock());
      mutex.unlock();
    }
  }
  // Issue 11, item 7.  Two tasks that join each other wait forever; the
  // shutdown cancels the joins, both tasks unwind, and shutdown() returns
  // only then (it used to return at once, with both tasks leaked).
  void testShutdownUnwindsTasksJoiningEachOther() {
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    std::atomic<int> joining{0}, unwound{0};
    Notification handlesSet;
    TaskHandle tasks[2];
    std::string ends[2];
    for (int i = 0; i < 2; ++i) {
      tasks[i] = channel->spawn([&, i] {
        EndWitness witness{unwound};
        handlesSet.wait();
        TaskHandle other = tasks[1 - i];
        ++joining;
        ends[i] = endOf(other);
      });
    }
    handlesSet.notify();
    CPPUNIT_ASSERT(eventually([&] { return joining.load() == 2; }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));  // both parked in join()
    shutdownWithin(*channel, 20s);
    CPPUNIT_ASSERT_EQUAL(2, unwound.load());
    CPPUNIT_ASSERT(tasks[0].done() && tasks[1].done());
    // The first to resume was cancelled; the other may find it ended by
    // then, and its join simply returns.
    CPPUNIT_ASSERT(ends[0] == "cancelled" || ends[1] == "cancelled");
    for (const std::string& end : ends) CPPUNIT_ASSERT_MESSAGE(end, end == "cancelled" || end == "returned");
  }

  // A task joining a task of another channel: the joiner's channel is
  // destroyed while the other task still runs.  The join ends in
  // operation_canceled and the joiner unwinds before the destructor
  // returns (it used to sleep on, and later resume on the other
  // channel's worker); the joined task is not disturbed.
  void testJoinAcrossChannelsIsCancelledWithItsOwnChannel() {
    std::unique_ptr<EventChannel> joinerChannel = makeChannel(1);
    std::unique_ptr<EventChannel> targetChannel = makeChannel(1);
    Notification release;
    std::atomic<bool> joining{false};
    std::atomic<int> unwound{0};
    TaskHandle target = targetChannel->spawn([&] { release.wait(); });
    std::string joinEnd = "not yet";
    TaskHandle joiner = joinerChannel->spawn([&] {
      EndWitness witness{unwound};
      joining = true;
      joinEnd = endOf(target);
    });
    CPPUNIT_ASSERT(eventually([&] { return joining.load(); }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*joinerChannel));  // parked in join()
    joinerChannel.reset();
    const bool joinerEnded = joiner.done();
    const int unwoundThen = unwound.load();
    release.notify();
    CPPUNIT_ASSERT_EQUAL(std::string("returned"), endOf(target));
    const std::string joinerEnd = endOf(joiner);  // before the assertions: it may still run
    CPPUNIT_ASSERT(joinerEnded);
    CPPUNIT_ASSERT_EQUAL(1, unwoundThen);
    CPPUNIT_ASSERT_EQUAL(std::string("cancelled"), joinEnd);
    CPPUNIT_ASSERT_EQUAL(std::string("returned"), joinerEnd);
  }

  // join() is a suspension point like the others: after the shutdown, a
  // task joining an unfinished task fails at once, while joining one that
  // has ended still returns (nothing to wait for).
  void testJoinAfterShutdownFailsAtOnce() {
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    std::unique_ptr<EventChannel> other = makeChannel(1);
    Notification parked, release;
    TaskHandle ended = other->spawn([] {});
    TaskHandle running = other->spawn([&] { release.wait(); });
    CPPUNIT_ASSERT(eventually([&] { return ended.done(); }));
    std::string first, afterShutdown, finished;
    TaskHandle task = channel->spawn([&] {
      try {
        parked.notify();
        evchan::this_task::sleepFor(1h);
      } catch (const SystemError&) {
      }
      afterShutdown = endOf(running);
      finished = endOf(ended);
    });
    CPPUNIT_ASSERT(parked.waitFor(8s));
    shutdownWithin(*channel, 20s);
    const bool endedWithShutdown = task.done();
    release.notify();
    CPPUNIT_ASSERT_EQUAL(std::string("returned"), endOf(running));
    const std::string taskEnd = endOf(task);  // before the assertions: it may still run
    CPPUNIT_ASSERT(endedWithShutdown);
    CPPUNIT_ASSERT_EQUAL(std::string("cancelled"), afterShutdown);
    CPPUNIT_ASSERT_EQUAL(std::string("returned"), finished);
    CPPUNIT_ASSERT_EQUAL(std::string("returned"), taskEnd);
  }

  // TaskHandle::cancel() ends each kind of wait a task can be parked in
  // with operation_canceled, one task at a time, and the channel goes on.
  void testCancelEndsTheWaitInProgressEverywhere() {
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    Mutex conditionMutex;
    ConditionVariable condition;
    Notification neverNotified;
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    TaskHandle sleeper = channel->spawn([] { evchan::this_task::sleepFor(1h); });
    const std::vector<std::pair<std::string, std::function<void()>>> waits = {
        {"sleepFor", [] { evchan::this_task::sleepFor(1h); }},
        {"ConditionVariable::wait",
         [&] {
           std::unique_lock<Mutex> lock(conditionMutex);
           condition.wait(lock, [] { return false; });
         }},
        {"Notification::wait", [&] { neverNotified.wait(); }},
        {"join", [&] { sleeper.join(); }},
        {"readSome",
         [&] {
           char byte;
           pair.server.readSome(&byte, 1);
         }},
    };
    for (const auto& wait : waits) {
      std::atomic<bool> started{false};
      std::atomic<int> unwound{0};
      TaskHandle task = channel->spawn([&] {
        EndWitness witness{unwound};
        started = true;
        wait.second();
      });
      CPPUNIT_ASSERT(eventually([&] { return started.load(); }));
      CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));  // parked
      CPPUNIT_ASSERT_MESSAGE(wait.first, task.cancel());
      CPPUNIT_ASSERT_EQUAL_MESSAGE(wait.first, std::string("cancelled"), endOf(task));
      CPPUNIT_ASSERT_EQUAL_MESSAGE(wait.first, 1, unwound.load());
    }
    // The joined task was left alone; the socket still works.
    CPPUNIT_ASSERT(!sleeper.done());
    CPPUNIT_ASSERT(sleeper.cancel());
    CPPUNIT_ASSERT_EQUAL(std::string("cancelled"), endOf(sleeper));
    pair.client.writeAll("x", 1);
    char byte = 0;
    CPPUNIT_ASSERT_EQUAL(std::size_t(1), pair.server.readSome(&byte, 1));
    CPPUNIT_ASSERT(!channel->isShutDown());
  }

  // Taking a Mutex is no cancellation point for TaskHandle::cancel(): the
  // task cancelled while it waits for the lock gets it, and its next wait
  // throws.  (It threw operation_canceled instead of locking before.)
  void testCancelLetsALockWaitFinish() {
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    Mutex heldByThread;
    heldByThread.lock();
    std::atomic<bool> started{false}, locked{false};
    TaskHandle task = channel->spawn([&] {
      started = true;
      {
        std::lock_guard<Mutex> lock(heldByThread);
        locked = true;
      }
      evchan::this_task::sleepFor(1h);
    });
    CPPUNIT_ASSERT(eventually([&] { return started.load(); }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));  // parked in lock()
    CPPUNIT_ASSERT(task.cancel());
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    CPPUNIT_ASSERT(!locked.load());
    heldByThread.unlock();
    CPPUNIT_ASSERT_EQUAL(std::string("cancelled"), endOf(task));  // in sleepFor
    CPPUNIT_ASSERT(locked.load());
    CPPUNIT_ASSERT(heldByThread.try_lock());  // and the task unlocked it
    heldByThread.unlock();
  }

  // A cancelled task unwinding through a destructor that takes a contended
  // Mutex waits for it and finishes its clean-up.  (Before, that lock threw
  // from the destructor during unwinding: std::terminate.)
  void testCancelledTaskCleanUpMayTakeAContendedLock() {
    struct LockingCleanUp {
      Mutex& mutex;
      std::atomic<bool>& unwinding;
      std::atomic<bool>& cleanedUp;
      ~LockingCleanUp() {
        unwinding = true;
        std::lock_guard<Mutex> lock(mutex);
        cleanedUp = true;
      }
    };
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    Mutex shared;
    std::atomic<bool> started{false}, unwinding{false}, cleanedUp{false};
    TaskHandle task = channel->spawn([&] {
      LockingCleanUp cleanUp{shared, unwinding, cleanedUp};
      started = true;
      evchan::this_task::sleepFor(1h);
    });
    CPPUNIT_ASSERT(eventually([&] { return started.load(); }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    shared.lock();
    CPPUNIT_ASSERT(task.cancel());
    CPPUNIT_ASSERT(eventually([&] { return unwinding.load(); }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));  // parked in the destructor's lock()
    CPPUNIT_ASSERT(!cleanedUp.load());
    shared.unlock();
    CPPUNIT_ASSERT_EQUAL(std::string("cancelled"), endOf(task));
    CPPUNIT_ASSERT(cleanedUp.load());
  }

  // A task cancelled while it computes finds its next wait, and every
  // later one, failing at once; what never waits still works.
  void testCancelBeforeAWaitFailsTheNextOne() {
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    std::atomic<bool> running{false}, cancelled{false};
    std::vector<std::string> seen;
    TaskHandle task = channel->spawn([&] {
      running = true;
      while (!cancelled.load()) std::this_thread::yield();  // busy, not waiting
      const auto record = [&](const char* what, const std::function<void()>& call) {
        try {
          call();
          seen.push_back(std::string(what) + " returned");
        } catch (const SystemError& e) {
          seen.push_back(std::string(what) + (e.code() == std::errc::operation_canceled ? " cancelled" : " failed"));
        }
      };
      seen.push_back(evchan::this_task::cancellationRequested() ? "requested" : "not requested");
      record("yield", [] { evchan::this_task::yield(); });
      record("sleep", [] { evchan::this_task::sleepFor(1ms); });
      record("uncontended lock", [] {
        Mutex mutex;
        std::lock_guard<Mutex> lock(mutex);
      });
      record("notification wait", [] {
        Notification notification;
        notification.waitFor(1h);
      });
    });
    CPPUNIT_ASSERT(eventually([&] { return running.load(); }));
    CPPUNIT_ASSERT(task.cancel());
    cancelled = true;
    task.join();
    const std::vector<std::string> expected = {"requested", "yield cancelled", "sleep cancelled",
                                               "uncontended lock returned", "notification wait cancelled"};
    CPPUNIT_ASSERT(expected == seen);
  }

  void testCancelAfterTheEndTwiceAndFromInside() {
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    TaskHandle empty;
    CPPUNIT_ASSERT(!empty.cancel());
    TaskHandle ended = channel->spawn([] {});
    ended.join();
    CPPUNIT_ASSERT(!ended.cancel());
    CPPUNIT_ASSERT(!ended.cancel());
    ended.join();  // still the same, normal, end
    // From inside: the call returns, the next wait throws.
    std::atomic<bool> returned{false};
    std::shared_ptr<TaskHandle> self = std::make_shared<TaskHandle>();
    Notification handed;
    TaskHandle task = channel->spawn([&] {
      handed.wait();
      returned = self->cancel() && self->cancel();
      evchan::this_task::sleepFor(1h);
    });
    *self = task;
    handed.notify();
    CPPUNIT_ASSERT_EQUAL(std::string("cancelled"), endOf(task));
    CPPUNIT_ASSERT(returned.load());
    CPPUNIT_ASSERT(!task.cancel());
    self.reset();
  }

  // Inside a shield the task's waits run to their end; after it, the next
  // wait throws.  Shields nest.
  void testShieldDefersCancellation() {
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    std::atomic<bool> inShield{false};
    std::vector<std::string> seen;
    TaskHandle task = channel->spawn([&] {
      {
        evchan::this_task::CancellationShield shield;
        inShield = true;
        char goodbye[3];
        pair.server.readExactly(goodbye, 3);  // parked here while cancelled
        {
          evchan::this_task::CancellationShield nested;
          evchan::this_task::yield();
        }
        evchan::this_task::sleepFor(1ms);
        pair.server.writeAll(goodbye, 3);
        seen.push_back("clean-up done");
      }
      try {
        evchan::this_task::yield();
        seen.push_back("yield returned");
      } catch (const SystemError& e) {
        seen.push_back(e.code() == std::errc::operation_canceled ? "yield cancelled" : "yield failed");
      }
    });
    CPPUNIT_ASSERT(eventually([&] { return inShield.load(); }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));  // parked in readExactly
    CPPUNIT_ASSERT(task.cancel());
    pair.client.writeAll("bye", 3);
    char echoed[3] = {};
    pair.client.readExactly(echoed, 3);
    task.join();
    CPPUNIT_ASSERT_EQUAL(std::string("bye"), std::string(echoed, 3));
    const std::vector<std::string> expected = {"clean-up done", "yield cancelled"};
    CPPUNIT_ASSERT(expected == seen);
  }

  // cancel() racing the task's own end: every round ends exactly once,
  // either normally or with operation_canceled, with nothing reported.
  void testCancelRacingCompletion() {
    std::atomic<int> reported{0};
    EventChannel::Options options;
    options.initialThreads = 2;
    options.onUnhandledException = [&reported](evchan::TaskId, std::exception_ptr) { ++reported; };
    std::unique_ptr<EventChannel> channel = evchan::test::createOrSkip(options);
    int returned = 0, cancelled = 0;
    for (int round = 0; round < 2000; ++round) {
      std::atomic<int> ran{0};
      TaskHandle task = channel->spawn([&ran, round] {
        ++ran;
        if (round % 2 == 0) evchan::this_task::yield(); else evchan::this_task::sleepFor(1us);
        ++ran;
      });
      if (round % 3 == 0) std::this_thread::yield();
      task.cancel();
      const std::string end = endOf(task);
      if (end == "returned") {
        CPPUNIT_ASSERT_EQUAL(2, ran.load());
        ++returned;
      } else {
        CPPUNIT_ASSERT_EQUAL_MESSAGE("round " + std::to_string(round), std::string("cancelled"), end);
        CPPUNIT_ASSERT(ran.load() <= 1);
        ++cancelled;
      }
      CPPUNIT_ASSERT(!task.cancel());
      if (round % 5 == 0) task = TaskHandle();  // dropped: a cancelled end is not reported
    }
    CPPUNIT_ASSERT_EQUAL(2000, returned + cancelled);
    CPPUNIT_ASSERT_EQUAL(0, reported.load());
    std::printf("cancel racing completion: %d returned, %d cancelled of 2000\n", returned, cancelled);
  }

  // Two threads cancel the same task while its wait (a timer, or a join
  // of a task that yields once) ends on its own: the wait's end, which
  // forgets the event or joiner, races both cancel() calls reading it.
  // Each task ends once, returned or cancelled, and nothing hangs; run
  // under TSan and ASan in CI.
  void testTwoCancelsRacingTheWaitsOwnEnd() {
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    const int kRounds = evchan::test::raceRounds(1000, "EVCHAN_RACE_FACTOR");
    int returned = 0, cancelled = 0, recorded = 0;
    for (int round = 0; round < kRounds; ++round) {
      EventChannel& tasks = *channel;
      TaskHandle task = channel->spawn([&tasks, round] {
        if (round % 2 == 0) {
          evchan::this_task::sleepFor(std::chrono::microseconds(round % 5));
        } else {
          tasks.spawn([] { evchan::this_task::yield(); }).join();
        }
      });
      std::atomic<bool> go{false};
      std::atomic<int> accepted{0};
      TaskHandle copy = task;
      std::thread other([&go, &accepted, copy]() mutable {
        while (!go.load()) std::this_thread::yield();
        if (copy.cancel()) ++accepted;
      });
      go = true;
      if (round % 3 == 0) std::this_thread::yield();
      if (task.cancel()) ++accepted;
      other.join();
      const std::string end = endOf(task);
      if (end == "returned") {
        ++returned;
      } else {
        CPPUNIT_ASSERT_EQUAL_MESSAGE("round " + std::to_string(round), std::string("cancelled"), end);
        // A cancelled end means a cancel() found the task running.
        CPPUNIT_ASSERT_MESSAGE("round " + std::to_string(round), accepted.load() >= 1);
        ++cancelled;
      }
      recorded += accepted.load();
      CPPUNIT_ASSERT(!task.cancel());
    }
    CPPUNIT_ASSERT_EQUAL(kRounds, returned + cancelled);
    std::printf("two cancels racing the wait's end: %d returned, %d cancelled of %d (%d cancel() calls took)\n",
                returned, cancelled, kRounds, recorded);
  }

  // cancel() racing notify() of the Notification the task waits on: the
  // task either sees the notification or is cancelled, never hangs, and a
  // notification it was cancelled out of is not consumed by nobody.
  void testCancelRacingANotification() {
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    int notified = 0, cancelled = 0;
    const int rounds = evchan::test::raceRounds(2000, "EVCHAN_RACE_FACTOR");
    for (int round = 0; round < rounds; ++round) {
      Notification notification;
      std::atomic<bool> waiting{false};
      TaskHandle task = channel->spawn([&] {
        waiting = true;
        notification.wait();
      });
      CPPUNIT_ASSERT(eventually([&] { return waiting.load(); }));
      std::thread notifier([&] { notification.notify(); });
      task.cancel();
      notifier.join();
      const std::string end = endOf(task);
      if (end == "returned") {
        ++notified;
      } else {
        CPPUNIT_ASSERT_EQUAL_MESSAGE("round " + std::to_string(round), std::string("cancelled"), end);
        ++cancelled;
      }
      CPPUNIT_ASSERT(notification.waitFor(0ms));  // the notification stays set either way
    }
    std::printf("cancel racing notify: %d woke notified, %d cancelled of %d\n", notified, cancelled, rounds);
  }

  // Tasks joining a task of another channel, while three things race to
  // end their joins: the joined task's end, TaskHandle::cancel() of two of
  // the joiners, and (every other round) the shutdown of the joiners'
  // channel.  The joined task ends before the cancels, after them, or at
  // the same time from another thread.  Every join ends exactly once:
  // "returned" when the joined task had ended, else "cancelled"; a joiner
  // nobody cancelled on a channel that stays up always returns, and one
  // cancelled (or shut down) before the end always fails.  Nothing hangs
  // (a lost wake-up), and a joiner's next wait is not cut short (a second
  // wake-up of the same join).
  void testJoinEndedByTheFirstOfEndCancelAndShutdown() {
    std::unique_ptr<EventChannel> targets = makeChannel(1);
    enum When { kBefore, kAfter, kMeanwhile };
    const int rounds = evchan::test::raceRounds(300, "EVCHAN_RACE_FACTOR");
    for (int round = 0; round < rounds; ++round) {
      std::unique_ptr<EventChannel> joiners = makeChannel(2);
      const bool shutDown = round % 2 == 1;
      const When end = static_cast<When>(round / 2 % 3);
      Notification release;
      TaskHandle target = targets->spawn([&release] { release.wait(); });
      constexpr int kJoiners = 4;
      std::string ends[kJoiners];
      std::atomic<int> joining{0}, shortSleeps{0};
      TaskHandle tasks[kJoiners];
      for (int i = 0; i < kJoiners; ++i) {
        tasks[i] = joiners->spawn([&, i] {
          ++joining;
          ends[i] = endOf(target);
          if (shutDown) return;
          const auto start = std::chrono::steady_clock::now();
          evchan::this_task::sleepFor(3ms);
          if (std::chrono::steady_clock::now() - start < 3ms) ++shortSleeps;
        });
      }
      CPPUNIT_ASSERT(eventually([&] { return joining.load() == kJoiners; }));  // joining, or about to
      if (end == kBefore) release.notify();
      std::thread ender;
      if (end == kMeanwhile) ender = std::thread([&release] { release.notify(); });
      tasks[0].cancel();
      tasks[1].cancel();
      if (shutDown) shutdownWithin(*joiners, 20s);
      if (ender.joinable()) ender.join();
      if (end == kAfter) release.notify();
      for (TaskHandle& task : tasks) endOf(task);  // they catch what join() throws
      CPPUNIT_ASSERT_EQUAL(std::string("returned"), endOf(target));
      const std::string where = "round " + std::to_string(round);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, 0, shortSleeps.load());
      for (int i = 0; i < kJoiners; ++i) {
        const std::string which = where + ", joiner " + std::to_string(i);
        const bool uninterrupted = i >= 2 && !shutDown;
        if (uninterrupted) {
          CPPUNIT_ASSERT_EQUAL_MESSAGE(which, std::string("returned"), ends[i]);
        } else if (end == kAfter) {
          CPPUNIT_ASSERT_EQUAL_MESSAGE(which, std::string("cancelled"), ends[i]);
        } else {
          CPPUNIT_ASSERT_MESSAGE(which + ": " + ends[i], ends[i] == "returned" || ends[i] == "cancelled");
        }
      }
    }
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(TaskCancelTest);
