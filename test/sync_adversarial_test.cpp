// SPDX-License-Identifier: Apache-2.0
// Mutex, ConditionVariable, Notification and TaskGroup attacked through the
// public API: tasks and plain threads on the same objects at once, on one-
// and two-worker channels; timed waits, deadlines and cancels racing
// notifications (every notifyOne() wakes exactly one waiter, none is lost
// or doubled); a ConditionVariable destroyed right after its notification
// (std::condition_variable allows it); a wait whose lock the caller does
// not hold; the channel shut down under parked waiters of every kind; a
// TaskGroup whose members spawn members while it is joined and destroyed,
// and TaskLocal values of tasks that migrate.  Run it under
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
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/race_scheduling.h"
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
using evchan::test::stagger;
namespace this_task = evchan::this_task;

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
  CPPUNIT_TEST(testWaitWithALockNotHeldLeavesTheConditionVariableWorking);
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
      const int n = rounds(150);
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
};

CPPUNIT_TEST_SUITE_REGISTRATION(SyncAdversarialTest);
