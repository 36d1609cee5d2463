// SPDX-License-Identifier: Apache-2.0
// Mutex, ConditionVariable, Notification and TaskGroup attacked through the
// public API: tasks and plain threads on the same objects at once, on one-
// and two-worker channels; timed waits, deadlines and cancels racing
// notifications (every notifyOne() wakes exactly one waiter, none is lost
// or doubled); a ConditionVariable destroyed by its notifier right after
// the notification, or by its last waiter (std::condition_variable allows
// both); a wait whose lock the caller does not hold; a Notification reset
// before its woken waiters ran; timeouts at both ends of the range; the
// channel shut down under parked waiters of every kind; a TaskGroup whose
// members spawn members while it is joined, cancelled and destroyed, with
// TaskLocal values checked after every wait.  Run it under
// ThreadSanitizer and AddressSanitizer; EVCHAN_SYNC_ADVERSARIAL_ROUNDS
// multiplies the rounds.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/race_scheduling.h"
#include "support/run_where.h"
#include "support/slowdown.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::ConditionVariable;
using evchan::Duration;
using evchan::EventChannel;
using evchan::Mutex;
using evchan::Notification;
using evchan::SystemError;
using evchan::TaskGroup;
using evchan::TaskHandle;
using evchan::TaskId;
using evchan::test::describe;
using evchan::test::endOfCall;
using evchan::test::eventually;
using evchan::test::generous;
using evchan::test::makeChannel;
using evchan::test::runWhere;
using evchan::test::stagger;
namespace this_task = evchan::this_task;

// Counts the TaskLocal instances alive; each remembers what its task set.
std::atomic<int> localsAlive{0};
struct Depth {
  Depth() { ++localsAlive; }
  ~Depth() { --localsAlive; }
  Depth(const Depth&) = delete;
  Depth& operator=(const Depth&) = delete;
  int value = -1;
};

int rounds(double plain) { return evchan::test::raceRounds(plain, "EVCHAN_SYNC_ADVERSARIAL_ROUNDS"); }

// A channel of `workers` threads that never grows, so that one- and
// two-worker runs really have one or two workers (the stuck-worker monitor
// would add threads when a loaded machine stretches a slice).
std::unique_ptr<EventChannel> fixedChannel(int workers) {
  EventChannel::Options options;
  options.initialThreads = workers;
  options.maxThreads = workers;
  options.stuckWorkerGrace = Duration::zero();
  return evchan::test::createOrSkip(options);
}

}  // namespace

class SyncAdversarialTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(SyncAdversarialTest);
  CPPUNIT_TEST(testConditionVariableDestroyedRightAfterNotify);
  CPPUNIT_TEST(testConditionVariableDestroyedByItsLastWaiter);
  CPPUNIT_TEST(testWaitWithALockNotHeldLeavesTheConditionVariableWorking);
  CPPUNIT_TEST(testEveryNotifyOneWakesExactlyOneWaiter);
  CPPUNIT_TEST(testNotificationTimedWaitsRacingNotify);
  CPPUNIT_TEST(testMutexUnderTasksThreadsCancelsAndDeadlines);
  CPPUNIT_TEST(testShutdownUnderParkedWaitersOfEveryKind);
  CPPUNIT_TEST(testNotificationResetBeforeTheWokenWaiterRanKeepsItWaiting);
  CPPUNIT_TEST(testHugeFiniteTimeoutsWaitUntilNotified);
  CPPUNIT_TEST(testTaskGroupSpawningTreeJoinedCancelledAndDestroyed);
  CPPUNIT_TEST(testFifoWakeUpsAcrossTasksThreadsAndChannels);
  CPPUNIT_TEST_SUITE_END();

 public:
  // The pattern std::condition_variable allows: the notifier, holding the
  // mutex, notifies and destroys the condition variable at once (a per-
  // request condition in a table that the mutex guards); the waiter, woken,
  // only needs the mutex again.  Task and thread waiters, notifyOne and
  // notifyAll, one- and two-worker channels: every waiter returns with the
  // lock and the state, and nothing touches the freed condition variable
  // (AddressSanitizer reports a use after free otherwise).
  void testConditionVariableDestroyedRightAfterNotify() {
    for (int workers = 1; workers <= 2; ++workers) {
      auto channel = fixedChannel(workers);
      const int n = rounds(400);
      for (int round = 0; round < n; ++round) {
        const std::string where = std::to_string(workers) + " worker(s), round " + std::to_string(round);
        struct Request {
          std::unique_ptr<ConditionVariable> condition = std::make_unique<ConditionVariable>();
          bool answered = false;
        };
        Mutex mutex;
        constexpr int kWaiters = 4;  // 0 and 2 tasks, 1 and 3 threads
        Request requests[kWaiters];
        std::atomic<int> waiting{0};
        std::atomic<int> wrong{0};
        auto wait = [&](int i) {
          std::unique_lock<Mutex> lock(mutex);
          ++waiting;
          while (!requests[i].answered) requests[i].condition->wait(lock);
          if (!lock.owns_lock()) ++wrong;
        };
        // A hang aborts with the round's name: the threads cannot be left.
        evchan::test::Watchdog watchdog(where);
        std::vector<TaskHandle> tasks;
        std::vector<std::thread> threads;
        for (int i = 0; i < kWaiters; ++i) {
          if (i % 2 == 0) {
            tasks.push_back(channel->spawn(wait, i));
          } else {
            threads.emplace_back(wait, i);
          }
        }
        // Each waiter counted itself under the mutex and is queued on its
        // condition once the mutex is free again.
        while (waiting.load() != kWaiters) std::this_thread::yield();
        auto answer = [&](int i) {
          std::lock_guard<Mutex> lock(mutex);
          requests[i].answered = true;
          if ((round + i) % 2 == 0) {
            requests[i].condition->notifyOne();
          } else {
            requests[i].condition->notifyAll();
          }
          requests[i].condition.reset();  // still under the mutex: the waiter cannot have returned
        };
        // Answered by tasks and threads alike, in an order that varies.
        std::vector<TaskHandle> answerers;
        std::vector<std::thread> answeringThreads;
        for (int k = 0; k < kWaiters; ++k) {
          const int i = (k + round) % kWaiters;
          if (k % 2 == 0) {
            answerers.push_back(channel->spawn([&, i, k] {
              stagger(k);
              answer(i);
            }));
          } else {
            answeringThreads.emplace_back([&, i, k] {
              stagger(k);
              answer(i);
            });
          }
        }
        for (std::thread& thread : answeringThreads) thread.join();
        for (std::thread& thread : threads) thread.join();
        for (TaskHandle& task : answerers) task.join();
        for (TaskHandle& task : tasks) task.join();
        CPPUNIT_ASSERT_EQUAL_MESSAGE(where, 0, wrong.load());
      }
    }
  }

  // The other common pattern: the notifier sets the state under the mutex
  // and notifies after releasing it; the last waiter to return destroys
  // the condition variable at once.  notifyAll() (or notifyOne(), once
  // per waiter) must be done with the condition variable before a waiter
  // it woke can return: task and thread waiters and notifiers, one- and
  // two-worker channels (AddressSanitizer reports a use after free
  // otherwise, and a plain build corrupts the heap or hangs).
  void testConditionVariableDestroyedByItsLastWaiter() {
    for (int workers = 1; workers <= 2; ++workers) {
      auto channel = fixedChannel(workers);
      const int n = rounds(400);
      for (int round = 0; round < n; ++round) {
        const std::string where = std::to_string(workers) + " worker(s), round " + std::to_string(round);
        evchan::test::Watchdog watchdog(where);
        Mutex mutex;
        auto* condition = new ConditionVariable;
        bool done = false;
        constexpr int kWaiters = 3;
        int waiting = 0;
        std::atomic<int> remaining{kWaiters};
        auto wait = [&] {
          {
            std::unique_lock<Mutex> lock(mutex);
            ++waiting;
            while (!done) condition->wait(lock);
          }
          if (--remaining == 0) delete condition;
        };
        std::vector<TaskHandle> tasks;
        std::vector<std::thread> threads;
        for (int i = 0; i < kWaiters; ++i) {
          if ((i + round) % 2 == 0) {
            tasks.push_back(channel->spawn(wait));
          } else {
            threads.emplace_back(wait);
          }
        }
        for (;;) {
          std::lock_guard<Mutex> lock(mutex);
          if (waiting == kWaiters) break;  // all queued once the mutex is free
        }
        auto notify = [&] {
          {
            std::lock_guard<Mutex> lock(mutex);
            done = true;
          }
          if (round % 3 == 2) {
            for (int i = 0; i < kWaiters; ++i) condition->notifyOne();
          } else {
            condition->notifyAll();
          }
        };
        runWhere(round % 2 == 0, *channel, notify);
        for (std::thread& thread : threads) thread.join();
        for (TaskHandle& task : tasks) task.join();
        CPPUNIT_ASSERT_EQUAL_MESSAGE(where, 0, remaining.load());
      }
    }
  }

  // Mutex promises that unlock() by a task or thread that does not hold it
  // throws and leaves the mutex as it was; a ConditionVariable wait whose
  // unique_lock does not hold the mutex (it is another thread's, or the
  // lock is deferred) throws the same way.  It must leave the condition
  // variable as it was too: no waiter of the failed call stays queued (a
  // notifyOne() would go to it, and touch a dead stack frame, instead of
  // the real waiter that comes next).
  void testWaitWithALockNotHeldLeavesTheConditionVariableWorking() {
    auto channel = makeChannel(2);
    Mutex mutex;
    ConditionVariable condition;
    const auto failedWait = [&](bool inTask, bool deferred, bool timed) {
      auto attempt = [&] {
        std::unique_lock<Mutex> lock;
        if (deferred) {
          lock = std::unique_lock<Mutex>(mutex, std::defer_lock);
        } else {
          lock = std::unique_lock<Mutex>(mutex, std::adopt_lock);  // the holder is another thread
        }
        std::string end;
        try {
          if (timed) {
            condition.waitFor(lock, generous(10s));
          } else {
            condition.wait(lock);
          }
          end = "returned";
        } catch (const std::system_error& e) {
          end = e.code() == std::errc::operation_not_permitted ? "refused" : describe(e.code());
        }
        if (!deferred) lock.release();  // never ours: the holder unlocks it
        return end;
      };
      std::string end;
      if (inTask) {
        channel->spawn([&] { end = attempt(); }).join();
      } else {
        std::thread([&] { end = attempt(); }).join();
      }
      return end;
    };
    for (int kind = 0; kind < 8; ++kind) {
      const bool inTask = kind & 1, deferred = kind & 2, timed = kind & 4;
      const std::string where = std::string(inTask ? "task" : "thread") + (deferred ? ", deferred lock" : ", lock of another thread") +
                                (timed ? ", waitFor" : ", wait");
      std::thread holder;
      Notification holding, release;
      if (!deferred) {
        holder = std::thread([&] {
          std::lock_guard<Mutex> lock(mutex);
          holding.notify();
          release.wait();
        });
        holding.wait();
      }
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("refused"), failedWait(inTask, deferred, timed));
      if (!deferred) {
        release.notify();
        holder.join();
      }
      CPPUNIT_ASSERT_MESSAGE(where + ": the mutex was left locked", mutex.try_lock());
      mutex.unlock();
      // A real waiter now; the one notifyOne() must reach it.
      std::atomic<bool> waiting{false};
      bool woken = false;
      TaskHandle waiter = channel->spawn([&] {
        std::unique_lock<Mutex> lock(mutex);
        waiting = true;
        woken = condition.waitFor(lock, generous(5s));  // never spurious: true only when notified
      });
      CPPUNIT_ASSERT_MESSAGE(where, eventually([&] { return waiting.load(); }));
      {
        std::lock_guard<Mutex> lock(mutex);  // the waiter is queued once it let go of it
        condition.notifyOne();
      }
      waiter.join();
      CPPUNIT_ASSERT_MESSAGE(where + ": the notification went to the failed wait's stale waiter", woken);
    }
  }

  // notifyOne() wakes exactly one waiter, whatever the others are doing:
  // four waiters that only a notification ends (two tasks, two threads)
  // keep the queue from running dry, while timed waits (tasks and
  // threads, timeouts of 0 to 300 us), waits under an expiring
  // DeadlineScope and tasks cancelled in their wait come and go beside
  // them.  A waiter whose timeout, deadline or cancel races the
  // notification either takes it (returns true) or leaves it to the next
  // waiter; every notification is counted exactly once.
  void testEveryNotifyOneWakesExactlyOneWaiter() {
    for (int workers = 1; workers <= 2; ++workers) {
      auto channel = fixedChannel(workers);
      const std::string config = std::to_string(workers) + " worker(s)";
      Mutex mutex;
      ConditionVariable condition;
      bool stop = false;
      int woken = 0;     // returns of a wait that said "notified", before `stop`
      int parked = 0;    // untimed waiters that have queued once
      std::atomic<int> oddEnds{0};
      std::string oddEnd;
      auto noteOdd = [&](const std::string& end) {
        if (oddEnds++ == 0) oddEnd = end;
      };
      // Untimed: only a notification ends their wait().
      auto untimed = [&] {
        std::unique_lock<Mutex> lock(mutex);
        ++parked;
        while (!stop) {
          condition.wait(lock);
          if (!stop) ++woken;
        }
      };
      auto timed = [&](int seed) {
        std::unique_lock<Mutex> lock(mutex);
        for (int i = 0;; ++i) {
          if (stop) break;
          if (condition.waitFor(lock, std::chrono::microseconds((seed * 37 + i * 11) % 300)) && !stop) ++woken;
        }
      };
      auto underDeadline = [&](int seed) {
        std::unique_lock<Mutex> lock(mutex);
        for (int i = 0;; ++i) {
          if (stop) break;
          const std::string end = endOfCall([&] {
            this_task::DeadlineScope deadline(std::chrono::microseconds((seed * 53 + i * 7) % 300));
            condition.wait(lock);
            if (!stop) ++woken;
          });
          if (end != "returned" && end != "timed out") noteOdd("deadline waiter: " + end);
          if (!lock.owns_lock()) noteOdd("deadline waiter lost the lock");
        }
      };
      std::vector<TaskHandle> tasks;
      std::vector<std::thread> threads;
      for (int i = 0; i < 2; ++i) {
        tasks.push_back(channel->spawn(untimed));
        threads.emplace_back(untimed);
        tasks.push_back(channel->spawn(timed, i));
        threads.emplace_back(timed, i + 2);
        tasks.push_back(channel->spawn(underDeadline, i));
      }
      CPPUNIT_ASSERT_MESSAGE(config, eventually([&] {
                               std::lock_guard<Mutex> lock(mutex);
                               return parked == 4;
                             }));
      // Tasks that wait once and are cancelled at a varying moment.
      std::atomic<bool> cancelling{true};
      std::thread canceller([&] {
        for (int i = 0; cancelling; ++i) {
          TaskHandle victim = channel->spawn([&] {
            const std::string end = endOfCall([&] {
              std::unique_lock<Mutex> lock(mutex);
              if (stop) return;
              condition.wait(lock);
              if (!stop) ++woken;
            });
            if (end != "returned" && end != "cancelled") noteOdd("cancelled waiter: " + end);
          });
          stagger(i % 7);
          victim.cancel();
          victim.join();
        }
      });
      // Ends the canceller, then every waiter.
      auto stopEveryone = [&] {
        cancelling = false;
        canceller.join();
        {
          std::lock_guard<Mutex> lock(mutex);
          stop = true;
          condition.notifyAll();
        }
        for (std::thread& thread : threads) thread.join();
        for (TaskHandle& task : tasks) task.join();
      };
      const int n = rounds(1000);
      for (int k = 1; k <= n; ++k) {
        auto notify = [&] {
          std::lock_guard<Mutex> lock(mutex);
          condition.notifyOne();
        };
        runWhere(k % 3 == 0, *channel, notify);
        // The untimed waiters are always there: the notification reached
        // someone, who counts it under the mutex.
        int seen = 0;
        const bool counted = eventually([&] {
          std::lock_guard<Mutex> lock(mutex);
          seen = woken;
          return seen >= k;
        });
        if (!counted || seen != k) {
          stopEveryone();
          CPPUNIT_FAIL(config + ": after notification " + std::to_string(k) + ", " + std::to_string(seen) +
                       " wake-ups were counted");
        }
      }
      stopEveryone();
      CPPUNIT_ASSERT_EQUAL_MESSAGE(config, n, woken);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(config + ": " + oddEnd, 0, oddEnds.load());
    }
  }

  // Notification::waitFor() with short timeouts (and a DeadlineScope)
  // racing notify(), from tasks and threads: a wait that starts after
  // notify() returned returns true at once, a wait that returns true saw
  // notify() called, the untimed waiters all return, and the
  // notification, destroyed once every wait is over, leaves nothing behind.
  void testNotificationTimedWaitsRacingNotify() {
    auto channel = makeChannel(2);
    const int n = rounds(500);
    for (int round = 0; round < n; ++round) {
      const std::string where = "round " + std::to_string(round);
      auto notification = std::make_unique<Notification>();
      std::atomic<bool> notifying{false}, notified{false};
      std::atomic<int> lateFalse{0}, earlyTrue{0}, odd{0};
      auto timedWaits = [&](int seed, bool deadline) {
        for (int i = 0;; ++i) {
          const bool after = notified.load();
          const auto timeout = std::chrono::microseconds((seed * 31 + i * 17) % 200);
          bool result = false;
          if (deadline) {
            const std::string end = endOfCall([&] {
              this_task::DeadlineScope scope(timeout);
              notification->wait();
              result = true;
            });
            if (end != "returned" && end != "timed out") ++odd;
          } else {
            result = notification->waitFor(timeout);
          }
          if (result && !notifying.load()) ++earlyTrue;
          if (!result && after) ++lateFalse;
          if (result) return;
        }
      };
      std::vector<TaskHandle> tasks;
      std::vector<std::thread> threads;
      tasks.push_back(channel->spawn([&] { notification->wait(); }));
      threads.emplace_back([&] { notification->wait(); });
      tasks.push_back(channel->spawn(timedWaits, round, false));
      tasks.push_back(channel->spawn(timedWaits, round + 1, true));
      threads.emplace_back(timedWaits, round + 2, false);
      auto notify = [&] {
        stagger(round % 6);
        notifying = true;
        notification->notify();
        notified = true;
      };
      runWhere(round % 2 == 0, *channel, notify);
      for (std::thread& thread : threads) thread.join();
      bool ended = true;
      for (TaskHandle& task : tasks) ended = eventually([&] { return task.done(); }) && ended;
      CPPUNIT_ASSERT_MESSAGE(where + ": a waiter hangs", ended);
      for (TaskHandle& task : tasks) task.join();
      CPPUNIT_ASSERT_MESSAGE(where, notification->isNotified());
      notification.reset();
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where + ": timed out after notify() returned", 0, lateFalse.load());
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where + ": notified before notify()", 0, earlyTrue.load());
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where + ": a deadline wait ended otherwise", 0, odd.load());
    }
  }

  // One Mutex taken by tasks of a one- and a two-worker channel (which
  // yield while they hold it), by plain threads, by try_lock() and by
  // tasks that are cancelled or whose DeadlineScope has passed (neither
  // ends a lock wait: they must get the lock).  At most one holder at a
  // time, and no increment lost.
  void testMutexUnderTasksThreadsCancelsAndDeadlines() {
    auto one = fixedChannel(1);
    auto two = fixedChannel(2);
    Mutex mutex;
    std::atomic<int> inside{0}, overlaps{0};
    long counter = 0;
    std::atomic<long> expected{0};
    std::atomic<int> odd{0};
    auto critical = [&](bool yieldInside) {
      if (inside.fetch_add(1) != 0) ++overlaps;
      const long seen = counter;
      if (yieldInside) this_task::yield();
      counter = seen + 1;
      inside.fetch_sub(1);
      ++expected;
    };
    const int n = rounds(1500);
    std::vector<TaskHandle> tasks;
    for (int i = 0; i < 16; ++i) {
      EventChannel& channel = i % 2 == 0 ? *one : *two;
      tasks.push_back(channel.spawn([&] {
        for (int k = 0; k < n; ++k) {
          std::lock_guard<Mutex> lock(mutex);
          critical(true);
        }
      }));
    }
    // Cancelled at once, or while they wait: lock() is no cancellation point.
    std::vector<TaskHandle> cancelled;
    for (int i = 0; i < 8; ++i) {
      EventChannel& channel = i % 2 == 0 ? *one : *two;
      cancelled.push_back(channel.spawn([&] {
        for (int k = 0; k < n; ++k) {
          std::lock_guard<Mutex> lock(mutex);
          critical(false);
        }
        // The request stays for the first cancellation point (unless the
        // task got here before the cancel() came).
        const bool requested = this_task::cancellationRequested();
        try {
          this_task::yield();
          if (requested) ++odd;
        } catch (const SystemError& e) {
          if (e.code() != std::errc::operation_canceled) ++odd;
        }
      }));
    }
    for (TaskHandle& task : cancelled) task.cancel();
    // Deadlines passed already: lock() is not bounded by them either.
    for (int i = 0; i < 4; ++i) {
      EventChannel& channel = i % 2 == 0 ? *one : *two;
      tasks.push_back(channel.spawn([&] {
        this_task::DeadlineScope deadline(-1ms);
        for (int k = 0; k < n; ++k) {
          std::lock_guard<Mutex> lock(mutex);
          critical(false);
        }
      }));
    }
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i) {
      threads.emplace_back([&] {
        for (int k = 0; k < 4 * n; ++k) {
          std::lock_guard<Mutex> lock(mutex);
          critical(false);
        }
      });
    }
    threads.emplace_back([&] {
      for (int k = 0; k < 8 * n; ++k) {
        if (mutex.try_lock()) {
          critical(false);
          mutex.unlock();
        } else {
          std::this_thread::yield();
        }
      }
    });
    for (std::thread& thread : threads) thread.join();
    for (TaskHandle& task : tasks) task.join();
    for (TaskHandle& task : cancelled) task.join();
    CPPUNIT_ASSERT_EQUAL(0, overlaps.load());
    CPPUNIT_ASSERT_EQUAL(expected.load(), counter);
    CPPUNIT_ASSERT(expected.load() >= (16L + 8 + 4) * n + 2L * 4 * n);
    CPPUNIT_ASSERT_EQUAL(0, odd.load());
    CPPUNIT_ASSERT(mutex.try_lock());
    mutex.unlock();
  }

  // A channel shut down (even rounds) or destroyed (odd rounds) while its
  // tasks are parked in Mutex::lock() (the mutex held by a thread, a
  // thread queued too), ConditionVariable::wait() and
  // Notification::wait(), beside plain threads in the same waits.  Every
  // task wait ends with operation_canceled (the condition's waiters
  // holding their mutex again, but for those whose re-lock had to wait:
  // documented), the threads' waits are untouched and end normally
  // afterwards, and the held mutex goes to the queued thread, then is
  // free, as is the condition's: no cancelled task keeps either.
  void testShutdownUnderParkedWaitersOfEveryKind() {
    const int n = rounds(100);
    for (int round = 0; round < n; ++round) {
      const std::string where = "round " + std::to_string(round);
      auto channel = makeChannel(round % 3 == 0 ? 1 : 2);
      Mutex held, free;
      ConditionVariable condition;
      Notification notification;
      std::atomic<int> started{0}, threadsWaiting{0};
      std::atomic<int> cancelledEnds{0}, lockLost{0};
      std::string oddEnd;
      std::mutex oddGuard;
      auto record = [&](const std::string& end) {
        if (end == "cancelled") {
          ++cancelledEnds;
        } else {
          std::lock_guard<std::mutex> lock(oddGuard);
          oddEnd = end;
        }
      };
      held.lock();  // this thread's
      constexpr int kEach = 3;
      for (int i = 0; i < kEach; ++i) {
        channel->spawn([&] {
          ++started;
          record(endOfCall([&] { std::lock_guard<Mutex> lock(held); }));
        });
        channel->spawn([&] {
          ++started;
          std::unique_lock<Mutex> lock(free);
          record(endOfCall([&] { condition.wait(lock); }));
          if (!lock.owns_lock()) ++lockLost;
        });
        channel->spawn([&] {
          ++started;
          record(endOfCall([&] { notification.wait(); }));
        });
      }
      bool lockedByThread = false, conditionThread = false, notificationThread = false;
      std::thread lockThread([&] {
        ++threadsWaiting;
        std::lock_guard<Mutex> lock(held);
        lockedByThread = true;
      });
      std::thread conditionWaiter([&] {
        std::unique_lock<Mutex> lock(free);
        ++threadsWaiting;
        conditionThread = condition.waitFor(lock, generous(20s));
      });
      std::thread notificationWaiter([&] {
        ++threadsWaiting;
        notificationThread = notification.waitFor(generous(20s));
      });
      const bool parked =
          eventually([&] { return started.load() == 3 * kEach && threadsWaiting == 3; }) &&
          evchan::test::allWorkersIdle(*channel);
      stagger(round % 5);
      if (round % 2 == 0) {
        channel->shutdown();
      }
      channel.reset();  // waits for the tasks to end
      const int cancelledTasks = cancelledEnds.load();
      // The threads' waits go on, and end as usual.
      {
        std::lock_guard<Mutex> lock(free);
        condition.notifyOne();
      }
      notification.notify();
      held.unlock();
      lockThread.join();
      conditionWaiter.join();
      notificationWaiter.join();
      CPPUNIT_ASSERT_MESSAGE(where + ": the waiters did not park", parked);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where + ": " + oddEnd, 3 * kEach, cancelledTasks);
      // Documented: a re-lock that had to wait after the shutdown (the
      // waiters contend among themselves) is cancelled too; the mutex must
      // not stay with any of them.
      CPPUNIT_ASSERT_MESSAGE(where, lockLost.load() < kEach);
      CPPUNIT_ASSERT_MESSAGE(where + ": the condition's mutex stayed locked", free.try_lock());
      free.unlock();
      CPPUNIT_ASSERT_MESSAGE(where + ": lock " + std::to_string(lockedByThread) + ", condition " +
                                 std::to_string(conditionThread) + ", notification " + std::to_string(notificationThread),
                             lockedByThread && conditionThread && notificationThread);
      CPPUNIT_ASSERT_MESSAGE(where + ": the mutex stayed locked", held.try_lock());
      held.unlock();
    }
  }

  // Notification::reset() promises: "A waiter woken by notify() that has
  // not run yet when reset() comes sees the reset and goes on waiting."
  // On one worker, a task notifies and resets in one slice, so the waiting
  // tasks (wait() and waitFor() with a long timeout, under a DeadlineScope
  // or not) cannot run in between: every one must still be waiting after
  // it, and return true (notified) at the next notify().
  void testNotificationResetBeforeTheWokenWaiterRanKeepsItWaiting() {
    auto channel = fixedChannel(1);
    Notification notification;
    std::atomic<int> parked{0};
    std::atomic<int> returned{0};
    bool results[3] = {false, false, false};
    std::vector<TaskHandle> waiters;
    waiters.push_back(channel->spawn([&] {
      ++parked;
      notification.wait();
      results[0] = true;
      ++returned;
    }));
    waiters.push_back(channel->spawn([&] {
      ++parked;
      results[1] = notification.waitFor(generous(60s));
      ++returned;
    }));
    waiters.push_back(channel->spawn([&] {
      ++parked;
      this_task::DeadlineScope deadline(generous(60s));
      results[2] = notification.waitFor(generous(60s));
      ++returned;
    }));
    CPPUNIT_ASSERT(eventually([&] { return parked.load() == 3; }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));  // all three parked
    channel->spawn([&] {
      notification.notify();
      notification.reset();
    }).join();
    // The waiters ran (they were woken) and saw the reset: parked again.
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    const int early = returned.load();
    notification.notify();
    for (TaskHandle& waiter : waiters) waiter.join();
    CPPUNIT_ASSERT_EQUAL_MESSAGE("waits that ended at the reset instead of waiting on", 0, early);
    CPPUNIT_ASSERT_MESSAGE("waitFor() returned false", results[0] && results[1] && results[2]);
  }

  // Finite timeouts at the top of the range (one below kInfiniteTimeout,
  // a century, a DeadlineScope of a century): a task or thread waiting
  // with one on a ConditionVariable or a Notification must wait until
  // notified, not overflow into a timeout that has already passed; and one
  // at the bottom of the range has passed (false, lock held).
  void testHugeFiniteTimeoutsWaitUntilNotified() {
    auto channel = makeChannel(2);
    const Duration huge[] = {evchan::kInfiniteTimeout - Duration(1), std::chrono::hours(24 * 365 * 100),
                             evchan::kInfiniteTimeout / 2};
    Mutex mutex;
    ConditionVariable condition;
    Notification notification;
    bool go = false;
    std::atomic<int> waiting{0}, early{0}, notified{0};
    auto conditionWait = [&](Duration timeout, bool deadline) {
      auto body = [&] {
        std::unique_lock<Mutex> lock(mutex);
        ++waiting;
        while (!go) {
          if (!condition.waitFor(lock, timeout)) {
            ++early;
            return;
          }
        }
        if (lock.owns_lock()) ++notified;
      };
      if (deadline) {
        this_task::DeadlineScope scope(timeout);
        body();
      } else {
        body();
      }
    };
    auto notificationWait = [&](Duration timeout) {
      ++waiting;
      if (notification.waitFor(timeout)) {
        ++notified;
      } else {
        ++early;
      }
    };
    std::vector<TaskHandle> tasks;
    std::vector<std::thread> threads;
    for (Duration timeout : huge) {
      tasks.push_back(channel->spawn(conditionWait, timeout, false));
      tasks.push_back(channel->spawn(conditionWait, timeout, true));
      tasks.push_back(channel->spawn(notificationWait, timeout));
      threads.emplace_back(conditionWait, timeout, false);
      threads.emplace_back(notificationWait, timeout);
    }
    const int count = static_cast<int>(tasks.size() + threads.size());
    const bool started = eventually([&] { return waiting.load() == count; });
    // Give a wrongly expired wait every chance to show: the tasks parked
    // (or ended), the threads had the time a wait takes to start.
    const bool idle = evchan::test::allWorkersIdle(*channel);
    {
      std::lock_guard<Mutex> lock(mutex);
      go = true;
      condition.notifyAll();
    }
    notification.notify();
    for (std::thread& thread : threads) thread.join();
    for (TaskHandle& task : tasks) task.join();
    CPPUNIT_ASSERT(started && idle);
    CPPUNIT_ASSERT_EQUAL_MESSAGE("waits that timed out early", 0, early.load());
    CPPUNIT_ASSERT_EQUAL(count, notified.load());
    // The bottom of the range has passed, in a task and on a thread.
    auto expired = [&] {
      std::unique_lock<Mutex> lock(mutex);
      return !condition.waitFor(lock, Duration::min()) && lock.owns_lock() &&
             !notification.waitFor(Duration::min() + Duration(1));
    };
    notification.reset();
    bool inTask = false;
    channel->spawn([&] { inTask = expired(); }).join();
    CPPUNIT_ASSERT(inTask);
    CPPUNIT_ASSERT(expired());
  }

  // A TaskGroup whose members spawn members (a tree, each member waiting
  // on a ConditionVariable, a Mutex and sleeps between its spawns, and
  // keeping its depth in a TaskLocal it checks after every wait, wherever
  // it resumed): joined from a thread while the tree grows, one failure
  // rethrown once and the second reported, not dropped; then cancelled
  // from another thread while a thread joins and members keep spawning
  // (members spawned after the cancel start cancelled); then destroyed
  // while they spawn.  Each time every member has ended (its TaskLocal
  // destroyed) when join() or the destructor returns, and no member ever
  // saw another task's TaskLocal value.
  void testTaskGroupSpawningTreeJoinedCancelledAndDestroyed() {
    std::atomic<int> reported{0};
    for (int workers = 1; workers <= 2; ++workers) {
      const std::string config = std::to_string(workers) + " worker(s)";
      EventChannel::Options options;
      options.initialThreads = workers;
      options.onUnhandledException = [&](TaskId, std::exception_ptr) { ++reported; };
      auto channel = evchan::test::createOrSkip(options);
      evchan::TaskLocal<Depth> depth;
      Mutex mutex;
      ConditionVariable condition;
      std::atomic<int> spawned{0}, wrongLocal{0};
      std::atomic<bool> leavesFail{true};
      std::atomic<int> thrown{0};
      auto owner = std::make_unique<TaskGroup>(*channel);
      TaskGroup* const group = owner.get();  // members spawn through it while the destructor runs
      // A member at `level`: checks its TaskLocal across waits, spawns two
      // children until `levels`; or, when `levels` is 0, a leaf child at
      // every turn, for ever.
      std::function<void(int, int)> member = [&](int level, int levels) {
        depth->value = level;
        for (int i = 0; levels == 0 || i < 2; ++i) {
          if (levels == 0 || level + 1 < levels) {
            ++spawned;
            group->spawn(member, level + 1, levels == 0 ? level + 2 : levels);
          }
          {
            std::unique_lock<Mutex> lock(mutex);
            condition.waitFor(lock, std::chrono::microseconds(50 * (i % 3)));
            condition.notifyOne();
          }
          if (depth->value != level) ++wrongLocal;
          this_task::sleepFor(std::chrono::microseconds(20 * (level % 4)));
          if (depth->value != level) ++wrongLocal;
          if (leavesFail && level == levels - 1 && i == 1 && spawned.load() % 7 == 3) {
            ++thrown;
            throw std::runtime_error("a leaf failed");
          }
        }
      };
      // Joined from a thread while the tree grows; failures (two members,
      // some leaves): the first rethrown, every other one reported.
      const int levels = 6;
      reported = 0;
      spawned = 2;
      group->spawn(member, 0, levels);
      group->spawn([&] {
        this_task::sleepFor(100us);
        ++thrown;
        throw std::logic_error("first");
      });
      group->spawn([&] {
        this_task::sleepFor(generous(50ms));
        ++thrown;
        throw std::logic_error("second");
      });
      std::string joined = endOfCall([&] { group->join(); });
      CPPUNIT_ASSERT_MESSAGE(config + ": " + joined, joined.find("exception: ") == 0);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(config + ": members alive after join()", 0, localsAlive.load());
      CPPUNIT_ASSERT_EQUAL_MESSAGE(config, std::size_t(0), group->size());
      // Rethrown once, every other failure reported once.
      const int reportedAfterFirst = reported.load();
      const std::string second = endOfCall([&] { group->join(); });
      CPPUNIT_ASSERT_EQUAL_MESSAGE(config + ", first join: " + joined + ", reported " + std::to_string(reportedAfterFirst) +
                                       ", now " + std::to_string(reported.load()) + ", spawned " + std::to_string(spawned.load()),
                                   std::string("returned"), second);
      CPPUNIT_ASSERT_MESSAGE(config, thrown.load() >= 2);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(config + ": failures rethrown (1) and reported", thrown.load(), 1 + reported.load());
      // Cancelled while a thread joins and the members spawn for ever.
      leavesFail = false;
      for (int i = 0; i < 3; ++i) group->spawn(member, 0, 0);
      std::string cancelledJoin;
      std::thread joiner([&] { cancelledJoin = endOfCall([&] { group->join(); }); });
      CPPUNIT_ASSERT(eventually([&] { return spawned.load() > 40; }));
      std::thread([&] { group->cancel(); }).join();
      joiner.join();
      CPPUNIT_ASSERT_EQUAL_MESSAGE(config, std::string("returned"), cancelledJoin);  // cancellations are no failures
      CPPUNIT_ASSERT_EQUAL_MESSAGE(config + ": members alive after join()", 0, localsAlive.load());
      // Usable again, then destroyed while its members spawn.
      for (int i = 0; i < 3; ++i) group->spawn(member, 0, 0);
      const int before = spawned.load();
      CPPUNIT_ASSERT(eventually([&] { return spawned.load() > before + 40; }));
      owner.reset();
      CPPUNIT_ASSERT_EQUAL_MESSAGE(config + ": members alive after the destructor", 0, localsAlive.load());
      CPPUNIT_ASSERT_EQUAL_MESSAGE(config, 0, wrongLocal.load());
    }
  }

  // "Wake-ups are FIFO" (ConditionVariable), with the waiters tasks of two
  // channels and plain threads queued in a known order, and waiters that
  // left their wait (a timeout, a cancel) dropping out of the order
  // without taking a notification; "Waiters get the lock in FIFO order"
  // (Mutex), with tasks of two channels.
  void testFifoWakeUpsAcrossTasksThreadsAndChannels() {
    auto first = makeChannel(1);
    auto second = makeChannel(2);
    constexpr int kWaiters = 12;
    const int n = rounds(20);
    for (int round = 0; round < n; ++round) {
      const std::string where = "round " + std::to_string(round);
      Mutex mutex;
      ConditionVariable condition;
      int queued = 0;
      std::vector<int> woken;        // under `mutex`
      std::vector<int> locked;       // under `held`
      Mutex held;
      std::vector<TaskHandle> tasks(kWaiters);
      std::vector<std::thread> threads;
      std::atomic<int> oddEnds{0};
      // Waiter i: kind i % 3 (task of `first`, task of `second`, thread);
      // waiters 4 and 9 leave early (4 by a timeout, 9 by a cancel).
      auto conditionWaiter = [&](int i) {
        std::unique_lock<Mutex> lock(mutex);
        ++queued;
        if (i == 4) {
          if (condition.waitFor(lock, 1ms)) ++oddEnds;  // nobody notifies that early
          return;
        }
        const std::string end = endOfCall([&] { condition.wait(lock); });
        if (end == "returned") {
          woken.push_back(i);
        } else if (!(i == 9 && end == "cancelled")) {
          ++oddEnds;
        }
      };
      auto start = [&](int i, const std::function<void(int)>& body) {
        if (i % 3 == 2) {
          threads.emplace_back(body, i);
        } else {
          tasks[i] = (i % 3 == 0 ? *first : *second).spawn(body, i);
        }
      };
      for (int i = 0; i < kWaiters; ++i) {
        start(i, conditionWaiter);
        // Queued once it counted itself and the mutex is free again.
        CPPUNIT_ASSERT_MESSAGE(where, eventually([&] {
                                 std::lock_guard<Mutex> lock(mutex);
                                 return queued == i + 1;
                               }));
      }
      CPPUNIT_ASSERT(eventually([&] { return tasks[4].done(); }));
      tasks[9].cancel();
      CPPUNIT_ASSERT(eventually([&] { return tasks[9].done(); }));
      std::vector<int> expected;
      for (int i = 0; i < kWaiters; ++i) {
        if (i != 4 && i != 9) expected.push_back(i);
      }
      for (std::size_t k = 1; k <= expected.size(); ++k) {
        {
          std::lock_guard<Mutex> lock(mutex);
          condition.notifyOne();
        }
        CPPUNIT_ASSERT_MESSAGE(where, eventually([&] {
                                 std::lock_guard<Mutex> lock(mutex);
                                 return woken.size() >= k;
                               }));
      }
      for (std::thread& thread : threads) thread.join();
      threads.clear();
      for (TaskHandle& task : tasks) {
        if (task.valid()) task.join();  // the threads' slots are empty
      }
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, 0, oddEnds.load());
      CPPUNIT_ASSERT_MESSAGE(where + ": condition wake-ups out of order", woken == expected);
      // The Mutex: held by this thread while tasks of both channels queue
      // (a parked task leaves its worker idle: the proof that it queued,
      // which a blocked thread cannot give).
      held.lock();
      std::atomic<int> lockQueued{0};
      for (int i = 0; i < kWaiters; ++i) {
        EventChannel& channel = i % 2 == 0 ? *first : *second;
        tasks[i] = channel.spawn([&, i] {
          ++lockQueued;
          std::lock_guard<Mutex> lock(held);
          locked.push_back(i);
        });
        CPPUNIT_ASSERT(eventually([&] { return lockQueued.load() == i + 1; }));
        CPPUNIT_ASSERT(evchan::test::allWorkersIdle(channel));
      }
      held.unlock();
      for (TaskHandle& task : tasks) task.join();
      std::vector<int> all;
      for (int i = 0; i < kWaiters; ++i) all.push_back(i);
      CPPUNIT_ASSERT_MESSAGE(where + ": lock hand-overs out of order", locked == all);
    }
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(SyncAdversarialTest);
