// SPDX-License-Identifier: Apache-2.0
// Late wake-ups: a task of channel A parked in a wait that another thread
// (a plain one, or a task of channel B) ends just as A shuts down or is
// destroyed.  The waits are the cross-thread ones: Mutex::lock(),
// ConditionVariable and Notification waits, a socket read or accept ended
// by the peer, cancel() or close(), TaskHandle::cancel() and
// TaskGroup::cancel().  Each wait must end exactly once, as documented; the
// task must resume on a worker of A, never on the waking thread; and A's
// shutdown must not return while the task still runs.  A wake-up landing
// after A's workers had left would otherwise run the task right there,
// inside the waker's locks.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/race_scheduling.h"
#include "support/slowdown.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::ConditionVariable;
using evchan::EventChannel;
using evchan::Mutex;
using evchan::Notification;
using evchan::SystemError;
using evchan::TaskGroup;
using evchan::TaskHandle;
using evchan::TcpListener;
using evchan::TcpSocket;
using evchan::test::stagger;
using evchan::test::Watchdog;
#if defined(__linux__)
using evchan::test::becomeIdlePriority;
using evchan::test::OneCpu;
using evchan::test::sleepPrecisely;
#endif
using evchan::test::allWorkersIdle;
using evchan::test::describe;
using evchan::test::eventually;

// EVCHAN_LATE_WAKE_ROUNDS multiplies the rounds for a long hunt.
int rounds(int plain) {
#if defined(_WIN32)
  // Half: the one-CPU rounds are Linux's, and under Wine the whole count
  // took 90 s, the cross check's longest suite.
  return evchan::test::raceRounds(plain / 2.0, "EVCHAN_LATE_WAKE_ROUNDS");
#else
  return evchan::test::raceRounds(plain, "EVCHAN_LATE_WAKE_ROUNDS");
#endif
}

// What ended a throwing wait: "returned", "cancelled", "timed out", or
// another description.
std::string endOf(const std::function<void()>& wait) { return evchan::test::endOfCall(wait); }

std::string endOf(const std::error_code& ec) {
  if (!ec) return "returned";
  if (ec == std::errc::operation_canceled) return "cancelled";
  return describe(ec);
}

// A channel with `threads` workers whose tasks' unjoined exceptions (the
// expected unwinding of a shutdown) are dropped instead of printed.
std::unique_ptr<EventChannel> quietChannel(int threads) {
  EventChannel::Options options;
  options.initialThreads = threads;
  options.onUnhandledException = [](evchan::TaskId, std::exception_ptr) {};
  return evchan::test::createOrSkip(options);
}

// Two callers released together, to land their calls as close as the
// machine allows.
class StartingLine {
 public:
  void waitForGo() {
    ready_.store(true);
    while (!go_.load()) std::this_thread::yield();
  }
  void go() {
    while (!ready_.load()) std::this_thread::yield();
    go_.store(true);
  }

 private:
  std::atomic<bool> ready_{false};
  std::atomic<bool> go_{false};
};

// How a round makes its two sides meet.  kSpread: the waker and the
// shutdown run on any CPU, with more spinning threads than cores so that
// each is preempted now and then.  kOneCpu (Linux): the round's threads,
// channel A's workers among them, share one CPU and the waker runs at
// SCHED_IDLE: any other thread that wakes preempts it at once, wherever it
// is in its wake-up, and runs A's shutdown to its end before the waker
// goes on.
enum class Race { kSpread, kOneCpu };

bool oneCpuAvailable() {
#if defined(__linux__)
  return true;
#else
  return false;
#endif
}

// One side of a round: the wait of the task of A, described as endOf()
// does, and the waker's call; `prepare` runs on the waker before the task
// is spawned (taking a mutex the wake-up then releases).
struct Sides {
  std::function<std::string()> wait;
  std::function<void()> wake;
  std::function<void()> prepare;
};

// How round `round` is raced.
struct Plan {
  Race race = Race::kSpread;
  bool wakerIsTask = false;  // a task of channel B wakes, not a plain thread
  bool destroy = false;      // A's destructor, not shutdown()
};

Plan planFor(int round, bool taskWakerAllowed = true) {
  Plan plan;
  plan.race = round % 2 == 1 && oneCpuAvailable() ? Race::kOneCpu : Race::kSpread;
  plan.wakerIsTask = taskWakerAllowed && plan.race == Race::kSpread && (round / 2) % 2 == 1;
  plan.destroy = round % 5 == 4;
  return plan;
}

std::string describePlan(int round, const Plan& plan) {
  return "round " + std::to_string(round) + (plan.race == Race::kOneCpu ? " (one CPU, " : " (spread, ") +
         (plan.wakerIsTask ? "a task of B wakes, " : "a thread wakes, ") +
         (plan.destroy ? "A destroyed)" : "A shut down)");
}

// Outcomes of a test's rounds, printed at its end: both sides of each race
// should show up, or the rounds did not race.
class Tally {
 public:
  void add(const std::string& end) { ++counts_[end]; }
  void print(const char* what) const {
    std::printf("[%s:", what);
    for (const auto& [end, count] : counts_) std::printf(" %s %d", end.c_str(), count);
    std::printf("]\n");
  }

 private:
  std::map<std::string, int> counts_;
};

// The shutdown's side of a round, the waker waiting at `line`: releases
// the waker, lets it get ahead by an amount that varies with `round` (up to
// `oneCpuSteps` microseconds on one CPU, spinners and a stagger when spread),
// shuts `channel` down (destroys it for a plan that says so) and returns
// `left()` as it was when that returned.  Then every one of the round's
// `all` tasks must leave, or the process aborts: run by the waker under
// its locks, a task may wait for them forever.  `joinWaker` ends the
// waker's side; all of it under a Watchdog.
int shutDownAgainstWaker(const std::string& where, int round, const Plan& plan, int oneCpuSteps, StartingLine& line,
                         std::unique_ptr<EventChannel>& channel, const std::function<int()>& left, int all,
                         const std::function<void()>& joinWaker) {
  std::atomic<bool> racing{true};
  std::vector<std::thread> spinners;
  if (plan.race == Race::kSpread) {
    for (int i = 0; i < 3; ++i) {
      spinners.emplace_back([&racing] {
        while (racing.load()) {
        }
      });
    }
  }
  Watchdog watchdog(where);
  line.go();
#if defined(__linux__)
  if (plan.race == Race::kOneCpu) sleepPrecisely(round / 2 % oneCpuSteps);
#else
  (void)oneCpuSteps;
#endif
  if (plan.race == Race::kSpread) stagger(round % 64);
  if (plan.destroy) {
    channel.reset();
  } else {
    channel->shutdown();
  }
  const int leftBeforeReturn = left();
  racing = false;
  for (std::thread& spinner : spinners) spinner.join();
  if (!eventually([&] { return left() == all; })) {
    std::fprintf(stderr, "%s: a task never ended after its channel's shutdown\n", where.c_str());
    std::abort();
  }
  joinWaker();
  return leftBeforeReturn;
}

// Runs one round: a task of a fresh channel A parks in `sides.wait`; a
// waker (a thread, or a task of `wakers`) calls `sides.wake` while the
// test shuts A down or destroys it.  Asserts that the wait ended exactly
// once, on a thread that is neither the waker nor the shutdown's caller,
// and before the shutdown returned.  Returns how the wait ended.  The
// task's handle is copied to `spawned`, when given, before the waker goes.
std::string raceRound(int round, const Plan& plan, const Sides& sides, EventChannel* wakers,
                      TaskHandle* spawned = nullptr) {
  const std::string where = describePlan(round, plan);
#if defined(__linux__)
  std::optional<OneCpu> pinned;
  if (plan.race == Race::kOneCpu) pinned.emplace();
#endif
  std::unique_ptr<EventChannel> channel = quietChannel(1);
  std::atomic<bool> prepared{false};
  std::atomic<bool> woke{false};
  std::thread::id wakerThread;
  StartingLine line;
  const auto wakerSide = [&] {
#if defined(__linux__)
    if (plan.race == Race::kOneCpu) becomeIdlePriority();
#endif
    if (sides.prepare) sides.prepare();
    prepared = true;
    line.waitForGo();
    wakerThread = evchan::currentThreadId();
    sides.wake();
    woke = true;
  };
  std::thread wakerThreadObject;
  TaskHandle wakerTask;
  if (plan.wakerIsTask) {
    wakerTask = wakers->spawn(wakerSide);
  } else {
    wakerThreadObject = std::thread(wakerSide);
  }
  CPPUNIT_ASSERT_MESSAGE(where + ": the waker never got ready", eventually([&] { return prepared.load(); }));

  std::atomic<bool> parked{false};
  std::atomic<bool> left{false};
  std::atomic<int> ends{0};
  std::thread::id before, after;
  std::string end;
  TaskHandle task = channel->spawn([&] {
    before = evchan::currentThreadId();
    parked = true;
    end = sides.wait();
    after = evchan::currentThreadId();
    ++ends;
    left = true;
  });
  if (spawned != nullptr) *spawned = task;  // read by the waker once released
  CPPUNIT_ASSERT_MESSAGE(where + ": the task never parked", eventually([&] { return parked.load(); }));
  CPPUNIT_ASSERT_MESSAGE(where + ": the task never parked", allWorkersIdle(*channel));

  const bool leftBeforeReturn =
      shutDownAgainstWaker(where, round, plan, 40, line, channel, [&] { return left.load() ? 1 : 0; }, 1, [&] {
        if (plan.wakerIsTask) {
          evchan::test::joinWithin(wakerTask);
        } else {
          wakerThreadObject.join();
        }
      }) == 1;
  CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("returned"), endOf([&] { task.join(); }));
  CPPUNIT_ASSERT_MESSAGE(where, woke.load());
  CPPUNIT_ASSERT_EQUAL_MESSAGE(where + ": the wait ended more than once", 1, ends.load());
  CPPUNIT_ASSERT_MESSAGE(where + ": the task resumed on the waking thread", after != wakerThread);
  CPPUNIT_ASSERT_MESSAGE(where + ": the task resumed on the thread that shut its channel down",
                         after != std::this_thread::get_id());
  CPPUNIT_ASSERT_MESSAGE(where + ": the task started on the waking thread", before != wakerThread);
  CPPUNIT_ASSERT_MESSAGE(where + ": shutdown() returned before its task ended", leftBeforeReturn);
  return end;
}

// raceRound() for `count` tasks of A at once, task i parked in
// `wait(i)`, all woken by one call of `wake` on a plain thread: a waker
// preempted in any one of its wake-ups lets A's shutdown overtake it.
// Returns how each wait ended.
std::vector<std::string> raceMany(int round, const Plan& plan, int count, const std::function<std::string(int)>& wait,
                                  const std::function<void(std::vector<TaskHandle>&)>& wake) {
  const std::string where = describePlan(round, plan);
#if defined(__linux__)
  std::optional<OneCpu> pinned;
  if (plan.race == Race::kOneCpu) pinned.emplace();
#endif
  std::unique_ptr<EventChannel> channel = quietChannel(1);
  std::atomic<int> parked{0}, left{0}, ended{0};
  std::vector<std::thread::id> after(count);
  std::vector<std::string> ends(count);
  std::vector<TaskHandle> tasks;
  for (int i = 0; i < count; ++i) {
    tasks.push_back(channel->spawn([&, i] {
      ++parked;
      ends[i] = wait(i);
      after[i] = evchan::currentThreadId();
      ++ended;
      ++left;
    }));
  }
  CPPUNIT_ASSERT_MESSAGE(where + ": the tasks never parked", eventually([&] { return parked.load() == count; }));
  CPPUNIT_ASSERT_MESSAGE(where + ": the tasks never parked", allWorkersIdle(*channel));
  std::thread::id wakerThread;
  StartingLine line;
  std::thread waker([&] {
#if defined(__linux__)
    if (plan.race == Race::kOneCpu) becomeIdlePriority();
#endif
    wakerThread = std::this_thread::get_id();
    line.waitForGo();
    wake(tasks);
  });
  const int leftBeforeReturn =
      shutDownAgainstWaker(where, round, plan, 64, line, channel, [&] { return left.load(); }, count, [&] { waker.join(); });
  for (TaskHandle& task : tasks) CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("returned"), endOf([&] { task.join(); }));
  CPPUNIT_ASSERT_EQUAL_MESSAGE(where + ": a wait ended more than once", count, ended.load());
  CPPUNIT_ASSERT_EQUAL_MESSAGE(where + ": shutdown() returned before its tasks ended", count, leftBeforeReturn);
  for (int i = 0; i < count; ++i) {
    const std::string task = where + ", task " + std::to_string(i);
    CPPUNIT_ASSERT_MESSAGE(task + ": resumed on the waking thread", after[i] != wakerThread);
    CPPUNIT_ASSERT_MESSAGE(task + ": resumed on the shutdown's thread", after[i] != std::this_thread::get_id());
  }
  return ends;
}

// Fails unless `end` is one of `allowed`.
void expectOneOf(const std::string& where, const std::string& end, std::initializer_list<const char*> allowed) {
  for (const char* one : allowed) {
    if (end == one) return;
  }
  CPPUNIT_FAIL(where + ": the wait ended with " + end);
}

}  // namespace

class TaskLateWakeTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(TaskLateWakeTest);
  CPPUNIT_TEST(testMutexUnlockedAsTheWaitersChannelShutsDown);
  CPPUNIT_TEST(testConditionNotifiedAsTheWaitersChannelShutsDown);
  CPPUNIT_TEST(testNotificationNotifiedAsTheWaitersChannelShutsDown);
  CPPUNIT_TEST(testReadEndedAsTheReadersChannelShutsDown);
  CPPUNIT_TEST(testAcceptEndedAsTheAcceptorsChannelShutsDown);
  CPPUNIT_TEST(testTaskCancelledAsItsChannelShutsDown);
  CPPUNIT_TEST(testGroupCancelledAsItsChannelShutsDown);
  CPPUNIT_TEST(testManyReadsEndedAsTheirChannelShutsDown);
  CPPUNIT_TEST(testManyWaitsEndedAsTheirChannelShutsDown);
  CPPUNIT_TEST_SUITE_END();

 public:
  void setUp() override {
    LeakCheckedFixture::setUp();
    wakers_ = quietChannel(2);
  }
  void tearDown() override {
    wakers_.reset();
    LeakCheckedFixture::tearDown();
  }

  // A task of A parks in a contended Mutex::lock(); the holder unlocks,
  // handing the mutex over, as A shuts down.  The lock is taken (and the
  // task unlocks it) or the wait throws operation_canceled.
  void testMutexUnlockedAsTheWaitersChannelShutsDown() {
    Tally tally;
    const int n = rounds(200);
    for (int round = 0; round < n; ++round) {
      const Plan plan = planFor(round);
      Mutex mutex;
      Sides sides;
      sides.prepare = [&] { mutex.lock(); };
      sides.wake = [&] { mutex.unlock(); };
      sides.wait = [&] {
        return endOf([&] {
          mutex.lock();
          mutex.unlock();
        });
      };
      const std::string end = raceRound(round, plan, sides, wakers_.get());
      expectOneOf(describePlan(round, plan), end, {"returned", "cancelled"});
      tally.add(end);
      // Free again: a hand-over to a cancelled waiter would leave it held.
      CPPUNIT_ASSERT_MESSAGE(describePlan(round, plan) + ": the mutex stayed locked", mutex.try_lock());
      mutex.unlock();
    }
    tally.print("lock");
  }

  // A task of A waits on a ConditionVariable; the waker sets the flag and
  // notifies as A shuts down.
  void testConditionNotifiedAsTheWaitersChannelShutsDown() {
    Tally tally;
    const int n = rounds(200);
    for (int round = 0; round < n; ++round) {
      const Plan plan = planFor(round);
      Mutex mutex;
      ConditionVariable condition;
      bool ready = false;
      Sides sides;
      sides.wake = [&] {
        {
          std::lock_guard<Mutex> lock(mutex);
          ready = true;
        }
        if (round % 4 < 2) condition.notifyOne(); else condition.notifyAll();
      };
      sides.wait = [&] {
        return endOf([&] {
          std::unique_lock<Mutex> lock(mutex);
          condition.wait(lock, [&] { return ready; });
        });
      };
      const std::string end = raceRound(round, plan, sides, wakers_.get());
      expectOneOf(describePlan(round, plan), end, {"returned", "cancelled"});
      tally.add(end);
      CPPUNIT_ASSERT_MESSAGE(describePlan(round, plan) + ": the mutex stayed locked", mutex.try_lock());
      mutex.unlock();
    }
    tally.print("condition");
  }

  // A task of A waits on a Notification (with a timeout it never reaches
  // in every other round); the waker notifies as A shuts down.
  void testNotificationNotifiedAsTheWaitersChannelShutsDown() {
    Tally tally;
    const int n = rounds(200);
    for (int round = 0; round < n; ++round) {
      const Plan plan = planFor(round);
      Notification notification;
      Sides sides;
      sides.wake = [&] { notification.notify(); };
      sides.wait = [&] {
        if (round % 3 == 1) {
          std::string end;
          const std::string thrown = endOf([&] { end = notification.waitFor(1h) ? "returned" : "timed out"; });
          return thrown == "returned" ? end : thrown;
        }
        return endOf([&] { notification.wait(); });
      };
      const std::string end = raceRound(round, plan, sides, wakers_.get());
      expectOneOf(describePlan(round, plan), end, {"returned", "cancelled"});
      tally.add(end);
    }
    tally.print("notification");
  }

  // A task of A parks in readSome(); the peer writes a byte, or another
  // thread cancels or closes the socket, as A shuts down.
  void testReadEndedAsTheReadersChannelShutsDown() {
    Tally tally;
    const int n = rounds(300);
    for (int round = 0; round < n; ++round) {
      const Plan plan = planFor(round);
      evchan::test::ConnectedPair pair = evchan::test::connectPair();
      const int how = round / 4 % 3;
      Sides sides;
      sides.wake = [&] {
        if (how == 0) {
          pair.client.writeAll("x", 1);
        } else if (how == 1) {
          pair.server.cancel();
        } else {
          pair.server.close();
        }
      };
      sides.wait = [&] {
        char byte = 0;
        std::error_code ec;
        const std::size_t got = pair.server.readSome(&byte, 1, ec);
        if (!ec && (got != 1 || byte != 'x')) return std::string("read ") + std::to_string(got) + " bytes";
        return endOf(ec);
      };
      const std::string end = raceRound(round, plan, sides, wakers_.get());
      const std::string where = describePlan(round, plan) + (how == 0 ? " write" : how == 1 ? " cancel" : " close");
      if (how == 0) {
        expectOneOf(where, end, {"returned", "cancelled"});
      } else {
        expectOneOf(where, end, {"cancelled"});
      }
      tally.add((how == 0 ? "write/" : how == 1 ? "cancel/" : "close/") + end);
    }
    tally.print("read");
  }

  // A task of A parks in accept(); a client connects, or another thread
  // cancels or closes the listener, as A shuts down.
  void testAcceptEndedAsTheAcceptorsChannelShutsDown() {
    Tally tally;
    const int n = rounds(300);
    for (int round = 0; round < n; ++round) {
      const Plan plan = planFor(round);
      TcpListener listener = TcpListener::listen(evchan::Endpoint("127.0.0.1", 0));
      const int port = listener.port();
      TcpSocket client, accepted;
      const int how = round / 4 % 3;
      Sides sides;
      sides.wake = [&] {
        if (how == 0) {
          client = TcpSocket::connect(evchan::Endpoint("127.0.0.1", port));
        } else if (how == 1) {
          listener.cancel();
        } else {
          listener.close();
        }
      };
      sides.wait = [&] {
        std::error_code ec;
        accepted = listener.accept(ec);
        return endOf(ec);
      };
      const std::string end = raceRound(round, plan, sides, wakers_.get());
      const std::string where = describePlan(round, plan) + (how == 0 ? " connect" : how == 1 ? " cancel" : " close");
      if (how == 0) {
        expectOneOf(where, end, {"returned", "cancelled"});
      } else {
        expectOneOf(where, end, {"cancelled"});
      }
      tally.add((how == 0 ? "connect/" : how == 1 ? "cancel/" : "close/") + end);
    }
    tally.print("accept");
  }

  // TaskHandle::cancel() from another thread, as A shuts down, of a task
  // parked in sleepFor(), a Notification, a ConditionVariable or a socket
  // read: both end the wait with operation_canceled.
  void testTaskCancelledAsItsChannelShutsDown() {
    Tally tally;
    const int n = rounds(400);
    for (int round = 0; round < n; ++round) {
      const Plan plan = planFor(round);
      const int kind = round / 4 % 4;
      Notification notification;
      Mutex mutex;
      ConditionVariable condition;
      std::optional<evchan::test::ConnectedPair> pair;
      if (kind == 3) pair.emplace(evchan::test::connectPair());
      TaskHandle handle;
      Sides sides;
      sides.wake = [&] { handle.cancel(); };
      sides.wait = [&]() -> std::string {
        switch (kind) {
          case 0:
            return endOf([] { evchan::this_task::sleepFor(1h); });
          case 1:
            return endOf([&] { notification.wait(); });
          case 2:
            return endOf([&] {
              std::unique_lock<Mutex> lock(mutex);
              condition.wait(lock);
            });
          default: {
            char byte = 0;
            std::error_code ec;
            pair->server.readSome(&byte, 1, ec);
            return endOf(ec);
          }
        }
      };
      const std::string where = describePlan(round, plan) + " kind " + std::to_string(kind);
      const std::string end = raceRound(round, plan, sides, wakers_.get(), &handle);
      expectOneOf(where, end, {"cancelled"});
      tally.add(std::string(kind == 0 ? "sleep/" : kind == 1 ? "notification/" : kind == 2 ? "condition/" : "read/") +
                end);
    }
    tally.print("cancel");
  }

  // TaskGroup::cancel() from another thread, as A shuts down, of members
  // parked in a sleep, a Notification and a socket read; then join() of
  // the group returns (cancellations are no failures), and every member
  // ended once, on a worker of A.
  void testGroupCancelledAsItsChannelShutsDown() {
    Tally tally;
    const int n = rounds(200);
    for (int round = 0; round < n; ++round) {
      const Plan plan = planFor(round, false);
      const std::string where = describePlan(round, plan);
#if defined(__linux__)
      std::optional<OneCpu> pinned;
      if (plan.race == Race::kOneCpu) pinned.emplace();
#endif
      std::unique_ptr<EventChannel> channel = quietChannel(1);
      evchan::test::ConnectedPair pair = evchan::test::connectPair();
      Notification notification;
      constexpr int kMembers = 3;
      std::atomic<int> parked{0}, left{0};
      std::thread::id after[kMembers];
      std::string ends[kMembers];
      std::optional<TaskGroup> group(std::in_place, *channel);
      for (int i = 0; i < kMembers; ++i) {
        group->spawn([&, i] {
          ++parked;
          if (i == 0) {
            ends[i] = endOf([] { evchan::this_task::sleepFor(1h); });
          } else if (i == 1) {
            ends[i] = endOf([&] { notification.wait(); });
          } else {
            char byte = 0;
            std::error_code ec;
            pair.server.readSome(&byte, 1, ec);
            ends[i] = endOf(ec);
          }
          after[i] = evchan::currentThreadId();
          ++left;
        });
      }
      CPPUNIT_ASSERT(eventually([&] { return parked.load() == kMembers; }));
      CPPUNIT_ASSERT(allWorkersIdle(*channel));
      std::thread::id wakerThread;
      StartingLine line;
      std::thread waker([&] {
#if defined(__linux__)
        if (plan.race == Race::kOneCpu) becomeIdlePriority();
#endif
        wakerThread = std::this_thread::get_id();
        line.waitForGo();
        group->cancel();
      });
      const int leftBeforeReturn = shutDownAgainstWaker(where, round, plan, 40, line, channel,
                                                        [&] { return left.load(); }, kMembers, [&] { waker.join(); });
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("returned"), endOf([&] { group->join(); }));
      group.reset();
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where + ": shutdown() returned before its tasks ended", kMembers, leftBeforeReturn);
      for (int i = 0; i < kMembers; ++i) {
        const std::string member = where + ", member " + std::to_string(i);
        expectOneOf(member, ends[i], {"cancelled"});
        CPPUNIT_ASSERT_MESSAGE(member + ": resumed on the waking thread", after[i] != wakerThread);
        CPPUNIT_ASSERT_MESSAGE(member + ": resumed on the shutdown's thread", after[i] != std::this_thread::get_id());
      }
      tally.add(ends[0] + "/" + ends[1] + "/" + ends[2]);
    }
    tally.print("group");
  }

  // Sixteen tasks of A parked in readSome(), each on its own connection;
  // one thread ends their reads one after the other (the peers write, the
  // sockets are cancelled or closed, or the tasks are cancelled) as A shuts
  // down: sixteen chances per round for the shutdown to overtake a wake-up.
  void testManyReadsEndedAsTheirChannelShutsDown() {
    Tally tally;
    const int n = rounds(200);
    constexpr int kReaders = 16;
    for (int round = 0; round < n; ++round) {
      const Plan plan = planFor(round, false);
      const int how = round / 4 % 4;
      std::vector<evchan::test::ConnectedPair> pairs;
      for (int i = 0; i < kReaders; ++i) pairs.push_back(evchan::test::connectPair());
      const auto wait = [&](int i) {
        char byte = 0;
        std::error_code ec;
        const std::size_t got = pairs[i].server.readSome(&byte, 1, ec);
        if (!ec && (got != 1 || byte != 'x')) return std::string("read ") + std::to_string(got) + " bytes";
        return endOf(ec);
      };
      const auto wake = [&](std::vector<TaskHandle>& tasks) {
        for (int i = 0; i < kReaders; ++i) {
          if (how == 0) {
            pairs[i].client.writeAll("x", 1);
          } else if (how == 1) {
            pairs[i].server.cancel();
          } else if (how == 2) {
            pairs[i].server.close();
          } else {
            tasks[i].cancel();
          }
        }
      };
      const std::vector<std::string> ends = raceMany(round, plan, kReaders, wait, wake);
      const char* name = how == 0 ? "write/" : how == 1 ? "cancel/" : how == 2 ? "close/" : "task cancel/";
      for (int i = 0; i < kReaders; ++i) {
        const std::string where = describePlan(round, plan) + " " + name + " reader " + std::to_string(i);
        if (how == 0) {
          expectOneOf(where, ends[i], {"returned", "cancelled"});
        } else {
          expectOneOf(where, ends[i], {"cancelled"});
        }
        tally.add(name + ends[i]);
      }
    }
    tally.print("reads");
  }

  // Sixteen tasks of A in five kinds of wait (a Notification, a
  // ConditionVariable, accept(), and a sleep or a Notification that
  // TaskHandle::cancel() ends), all ended by one thread one after the
  // other as A shuts down.
  void testManyWaitsEndedAsTheirChannelShutsDown() {
    Tally tally;
    const int n = rounds(200);
    constexpr int kWaiters = 16, kKinds = 5;
    for (int round = 0; round < n; ++round) {
      const Plan plan = planFor(round, false);
      std::vector<Notification> notifications(kWaiters);
      std::vector<Mutex> mutexes(kWaiters);
      std::vector<ConditionVariable> conditions(kWaiters);
      std::vector<std::atomic<bool>> ready(kWaiters);
      std::vector<TcpListener> listeners;
      for (int i = 0; i < kWaiters; ++i) {
        listeners.push_back(i % kKinds == 2 ? TcpListener::listen(evchan::Endpoint("127.0.0.1", 0)) : TcpListener());
      }
      const auto wait = [&](int i) {
        switch (i % kKinds) {
          case 0:
          case 4:
            return endOf([&] { notifications[i].wait(); });
          case 1:
            return endOf([&] {
              std::unique_lock<Mutex> lock(mutexes[i]);
              conditions[i].wait(lock, [&] { return ready[i].load(); });
            });
          case 2: {
            std::error_code ec;
            listeners[i].accept(ec);
            return endOf(ec);
          }
          default:
            return endOf([] { evchan::this_task::sleepFor(1h); });
        }
      };
      const auto wake = [&](std::vector<TaskHandle>& tasks) {
        for (int i = 0; i < kWaiters; ++i) {
          switch (i % kKinds) {
            case 0:
              notifications[i].notify();
              break;
            case 1:
              {
                std::lock_guard<Mutex> lock(mutexes[i]);
                ready[i] = true;
              }
              conditions[i].notifyOne();
              break;
            case 2:
              listeners[i].cancel();
              break;
            default:
              tasks[i].cancel();
          }
        }
      };
      const std::vector<std::string> ends = raceMany(round, plan, kWaiters, wait, wake);
      for (int i = 0; i < kWaiters; ++i) {
        static const char* const kNames[kKinds] = {"notify/", "condition/", "accept cancel/", "sleep cancel/",
                                                   "notification cancel/"};
        const std::string where = describePlan(round, plan) + " " + kNames[i % kKinds] + std::to_string(i);
        if (i % kKinds < 2) {
          expectOneOf(where, ends[i], {"returned", "cancelled"});
        } else {
          expectOneOf(where, ends[i], {"cancelled"});
        }
        tally.add(kNames[i % kKinds] + ends[i]);
      }
    }
    tally.print("waits");
  }

 private:
  std::unique_ptr<EventChannel> wakers_;
};

CPPUNIT_TEST_SUITE_REGISTRATION(TaskLateWakeTest);
