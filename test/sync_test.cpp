// SPDX-License-Identifier: Apache-2.0
// Tests of the task-aware Mutex, ConditionVariable and Notification.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <thread>
#include <vector>

#include "support/diagnostics.h"
#include "support/computing.h"
#include "support/leak_checked_fixture.h"
#include "support/slowdown.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::ConditionVariable;
using evchan::Duration;
using evchan::EventChannel;
using evchan::Mutex;
using evchan::Notification;
using evchan::TaskHandle;
using evchan::test::generous;
using evchan::test::elapsedText;
using evchan::test::timed;

// One worker and no stuck-worker monitor: a test that asserts the pool
// never needed a second thread must not get one for a slow slice on a
// loaded machine.
std::unique_ptr<EventChannel> singleWorkerChannel() {
  EventChannel::Options options;
  options.initialThreads = 1;
  options.stuckWorkerGrace = Duration::zero();
  return EventChannel::create(options);
}

void joinAll(std::vector<TaskHandle>& tasks) {
  for (TaskHandle& task : tasks) task.join();
}

void assertUnlockRefused(Mutex& mutex, const std::string& by) {
  try {
    mutex.unlock();
    CPPUNIT_FAIL("unlock() by " + by + " was accepted");
  } catch (const evchan::SystemError& e) {
    CPPUNIT_ASSERT_MESSAGE(by + ": " + e.what(), e.code() == std::errc::operation_not_permitted);
  }
}

}  // namespace

class SyncTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(SyncTest);
  CPPUNIT_TEST(testMutexExcludesTasksAndThreads);
  CPPUNIT_TEST(testMutexWaitSuspendsTheTask);
  CPPUNIT_TEST(testMutexHandsOverInFifoOrder);
  CPPUNIT_TEST(testTryLock);
  CPPUNIT_TEST(testUnlockByANonOwnerIsRefused);
  CPPUNIT_TEST(testUnlockByTheOwningTaskOnAnyThread);
  CPPUNIT_TEST(testConditionVariableProducerConsumer);
  CPPUNIT_TEST(testConditionVariableTimeoutInTaskAndThread);
  CPPUNIT_TEST(testNotifyAllWakesEveryWaiter);
  CPPUNIT_TEST(testNotificationWakesTasksAndThreads);
  CPPUNIT_TEST(testNotificationTimeoutAndReset);
  CPPUNIT_TEST(testNegativeTimeoutsInATaskAreExpired);
  CPPUNIT_TEST(testPredicateWaitForWithExtremeTimeouts);
  CPPUNIT_TEST(testAWakerThatYieldsLetsAnIdleWorkerRunTheWokenTask);
  CPPUNIT_TEST(testATaskWokenByANotificationRunsWhileItsWakerComputes);
  CPPUNIT_TEST(testATaskHandedAMutexRunsWhileItsFormerHolderComputes);
  CPPUNIT_TEST_SUITE_END();

 public:
  // 100 tasks (which yield inside the critical section) and a thread add to
  // one counter: no increment may be lost.
  void testMutexExcludesTasksAndThreads() {
    Mutex mutex;
    long counter = 0;
    auto channel = singleWorkerChannel();
    std::vector<TaskHandle> tasks;
    for (int i = 0; i < 100; ++i) {
      tasks.push_back(channel->spawn([&] {
        for (int k = 0; k < 50; ++k) {
          std::lock_guard<Mutex> lock(mutex);
          const long seen = counter;
          evchan::this_task::yield();  // others run, and must wait for the lock
          counter = seen + 1;
        }
      }));
    }
    std::thread thread([&] {
      for (int k = 0; k < 2000; ++k) {
        std::lock_guard<Mutex> lock(mutex);
        ++counter;
      }
    });
    joinAll(tasks);
    thread.join();
    CPPUNIT_ASSERT_EQUAL(100L * 50 + 2000, counter);
  }

  // With one worker, a task waiting for the lock must not block it: the
  // holder (another task) has to run to release it.
  void testMutexWaitSuspendsTheTask() {
    Mutex mutex;
    std::atomic<int> order{0};
    int waiterSaw = -1;
    auto channel = singleWorkerChannel();
    TaskHandle holder = channel->spawn([&] {
      std::lock_guard<Mutex> lock(mutex);
      evchan::this_task::sleepFor(50ms);
      order = 1;
    });
    TaskHandle waiter = channel->spawn([&] {
      std::lock_guard<Mutex> lock(mutex);
      waiterSaw = order.load();
    });
    holder.join();
    waiter.join();
    CPPUNIT_ASSERT_EQUAL(1, waiterSaw);
    CPPUNIT_ASSERT_EQUAL(1, channel->poolStats().peak);
  }

  void testMutexHandsOverInFifoOrder() {
    Mutex mutex;
    std::vector<int> order;
    auto channel = singleWorkerChannel();
    mutex.lock();  // held by this thread while the tasks queue up
    std::vector<TaskHandle> tasks;
    std::atomic<int> started{0};
    for (int i = 0; i < 5; ++i) {
      tasks.push_back(channel->spawn([&, i] {
        ++started;
        std::lock_guard<Mutex> lock(mutex);
        order.push_back(i);
      }));
      // Task i waits in lock() before the next is spawned.
      CPPUNIT_ASSERT(evchan::test::eventually([&] { return started.load() == i + 1; }));
      CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    }
    mutex.unlock();
    joinAll(tasks);
    CPPUNIT_ASSERT((order == std::vector<int>{0, 1, 2, 3, 4}));
  }

  void testTryLock() {
    Mutex mutex;
    CPPUNIT_ASSERT(mutex.try_lock());
    CPPUNIT_ASSERT(!mutex.try_lock());
    mutex.unlock();
    CPPUNIT_ASSERT(mutex.try_lock());
    mutex.unlock();
  }

  // A stray unlock() used to be accepted: unlocking a free mutex did
  // nothing, and a task unlocking a mutex another task held let a third
  // task in beside the holder.
  void testUnlockByANonOwnerIsRefused() {
    Mutex mutex;
    assertUnlockRefused(mutex, "a free mutex");

    mutex.lock();
    std::thread([&] { assertUnlockRefused(mutex, "another thread"); }).join();
    std::thread([&] { CPPUNIT_ASSERT_MESSAGE("the refused unlock freed the mutex", !mutex.try_lock()); }).join();
    mutex.unlock();

    auto channel = singleWorkerChannel();
    Notification holderMayUnlock;
    std::atomic<bool> holding{false};
    std::atomic<int> inside{0}, mostInside{0};
    TaskHandle holder = channel->spawn([&] {
      std::lock_guard<Mutex> lock(mutex);
      mostInside = std::max(mostInside.load(), ++inside);
      holding = true;
      holderMayUnlock.wait();  // parks holding the mutex
      --inside;
    });
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return holding.load(); }));
    TaskHandle stray = channel->spawn([&] {
      assertUnlockRefused(mutex, "another task");
      CPPUNIT_ASSERT_MESSAGE("the refused unlock freed the mutex", !mutex.try_lock());
    });
    stray.join();
    TaskHandle third = channel->spawn([&] {
      std::lock_guard<Mutex> lock(mutex);
      mostInside = std::max(mostInside.load(), ++inside);
      --inside;
    });
    holderMayUnlock.notify();
    holder.join();
    third.join();
    CPPUNIT_ASSERT_EQUAL(1, mostInside.load());
  }

  // The owner is the task, not the thread it ran on when it locked.
  void testUnlockByTheOwningTaskOnAnyThread() {
    Mutex mutex;
    EventChannel::Options options;
    options.initialThreads = 2;
    auto channel = EventChannel::create(options);
    std::vector<TaskHandle> tasks;
    for (int t = 0; t < 4; ++t) {
      tasks.push_back(channel->spawn([&] {
        for (int i = 0; i < 50; ++i) {
          std::lock_guard<Mutex> lock(mutex);  // a refused unlock would terminate
          evchan::this_task::yield();  // may resume on the other worker
        }
      }));
    }
    joinAll(tasks);
    CPPUNIT_ASSERT(mutex.try_lock());
    mutex.unlock();
  }

  void testConditionVariableProducerConsumer() {
    Mutex mutex;
    ConditionVariable ready;
    std::deque<int> queue;
    long sum = 0;
    auto channel = singleWorkerChannel();
    TaskHandle consumer = channel->spawn([&] {
      for (int i = 0; i < 1000; ++i) {
        std::unique_lock<Mutex> lock(mutex);
        ready.wait(lock, [&] { return !queue.empty(); });
        sum += queue.front();
        queue.pop_front();
      }
    });
    std::thread producer([&] {
      for (int i = 1; i <= 1000; ++i) {
        {
          std::lock_guard<Mutex> lock(mutex);
          queue.push_back(i);
        }
        ready.notifyOne();
      }
    });
    producer.join();
    consumer.join();
    CPPUNIT_ASSERT_EQUAL(500500L, sum);
  }

  void testConditionVariableTimeoutInTaskAndThread() {
    Mutex mutex;
    ConditionVariable never;
    auto channel = singleWorkerChannel();
    bool taskResult = true;
    std::chrono::steady_clock::duration taskElapsed{};
    TaskHandle task = channel->spawn([&] {
      std::unique_lock<Mutex> lock(mutex);
      taskElapsed = timed([&] { taskResult = never.waitFor(lock, 150ms); });
      CPPUNIT_ASSERT(lock.owns_lock());
    });
    task.join();
    CPPUNIT_ASSERT(!taskResult);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(taskElapsed), taskElapsed >= 140ms && taskElapsed < generous(2s));

    std::unique_lock<Mutex> lock(mutex);
    bool threadResult = true;
    const auto threadElapsed = timed([&] { threadResult = never.waitFor(lock, 150ms); });
    CPPUNIT_ASSERT(!threadResult);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(threadElapsed), threadElapsed >= 140ms && threadElapsed < generous(2s));
  }

  void testNotifyAllWakesEveryWaiter() {
    Mutex mutex;
    ConditionVariable go;
    bool released = false;
    std::atomic<int> woken{0};
    auto channel = singleWorkerChannel();
    std::vector<TaskHandle> tasks;
    std::atomic<int> started{0};
    for (int i = 0; i < 20; ++i) {
      tasks.push_back(channel->spawn([&] {
        ++started;
        std::unique_lock<Mutex> lock(mutex);
        if (go.waitFor(lock, 5s, [&] { return released; })) ++woken;
      }));
    }
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return started.load() == 20; }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));  // all 20 wait
    {
      std::lock_guard<Mutex> lock(mutex);
      released = true;
    }
    go.notifyAll();
    joinAll(tasks);
    CPPUNIT_ASSERT_EQUAL(20, woken.load());
  }

  void testNotificationWakesTasksAndThreads() {
    Notification notification;
    std::atomic<int> woken{0};
    auto channel = singleWorkerChannel();
    std::vector<TaskHandle> tasks;
    for (int i = 0; i < 10; ++i) {
      tasks.push_back(channel->spawn([&] {
        if (notification.waitFor(5s)) ++woken;
      }));
    }
    std::thread thread([&] {
      if (notification.waitFor(5s)) ++woken;
    });
    std::this_thread::sleep_for(50ms);
    CPPUNIT_ASSERT_EQUAL(0, woken.load());
    notification.notify();
    joinAll(tasks);
    thread.join();
    CPPUNIT_ASSERT_EQUAL(11, woken.load());
    // Once notified, later waiters pass at once.
    CPPUNIT_ASSERT(notification.waitFor(0ms));
    CPPUNIT_ASSERT_EQUAL(1, channel->poolStats().peak);  // the tasks never blocked the worker
  }

  // What docs/tasks.md tells a task that wakes another and computes on:
  // after one yield the woken task runs on the idle worker while the waker
  // computes.
  void testAWakerThatYieldsLetsAnIdleWorkerRunTheWokenTask() {
    Notification notification;
    expectWokenTaskRunsWhileItsWakerComputes([&] { notification.wait(); }, [&] {
      notification.notify();
      evchan::this_task::yield();
    });
  }

  // The waker computes on without suspending: what it woke waits in its
  // worker's local batch until the stuck-worker monitor finds the item
  // past its grace period and hands the batch to the idle worker.
  void testATaskWokenByANotificationRunsWhileItsWakerComputes() {
    Notification notification;
    expectWokenTaskRunsWhileItsWakerComputes([&] { notification.wait(); }, [&] { notification.notify(); });
  }

  void testATaskHandedAMutexRunsWhileItsFormerHolderComputes() {
    Mutex mutex;
    std::atomic<bool> held{false};
    auto channel = evchan::test::makeChannel(2);
    TaskHandle holder = channel->spawn([&] {
      mutex.lock();
      held = true;
      // Waits (suspended) until the other task queues for the lock.
      while (!waitingForLock_.load()) evchan::this_task::sleepFor(1ms);
      evchan::this_task::sleepFor(20ms);  // it has parked in lock()
      mutex.unlock();
      computeUntilWokenRan();
    });
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return held.load(); }));
    TaskHandle waiter = channel->spawn([&] {
      waitingForLock_ = true;
      std::lock_guard<Mutex> lock(mutex);
      wokenRan_ = true;
    });
    evchan::test::joinWithin(holder, 10s);
    evchan::test::joinWithin(waiter, 10s);
    CPPUNIT_ASSERT_MESSAGE("the task handed the mutex ran only once its former holder stopped computing",
                           ranWhileComputing_.load());
  }

  void testNotificationTimeoutAndReset() {
    Notification notification;
    auto channel = singleWorkerChannel();
    bool result = true;
    std::chrono::steady_clock::duration elapsed{};
    channel->spawn([&] { elapsed = timed([&] { result = notification.waitFor(100ms); }); }).join();
    CPPUNIT_ASSERT(!result);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(elapsed), elapsed >= 90ms && elapsed < generous(2s));
    notification.notify();
    CPPUNIT_ASSERT(notification.isNotified());
    notification.reset();
    CPPUNIT_ASSERT(!notification.isNotified());
    CPPUNIT_ASSERT(!notification.waitFor(10ms));
  }

  // A timeout computed as "deadline - now" may come out negative: in a
  // task, as on a thread, that is a wait that has already timed out.
  void testNegativeTimeoutsInATaskAreExpired() {
    auto channel = singleWorkerChannel();
    Notification notification;
    Mutex mutex;
    ConditionVariable condition;
    std::atomic<int> expired{0};
    channel
        ->spawn([&] {
          if (!notification.waitFor(-1ms)) ++expired;
          std::unique_lock<Mutex> lock(mutex);
          if (!condition.waitFor(lock, -5ms) && lock.owns_lock()) ++expired;
        })
        .join();
    CPPUNIT_ASSERT_EQUAL(2, expired.load());
  }

  // The predicate form of waitFor() computes a deadline from its timeout:
  // kInfiniteTimeout (and the most negative duration) must saturate, not
  // overflow, and mean "no deadline" (and "already expired").
  void testPredicateWaitForWithExtremeTimeouts() {
    Mutex mutex;
    ConditionVariable condition;
    bool ready = true;
    {
      std::unique_lock<Mutex> lock(mutex);
      CPPUNIT_ASSERT(condition.waitFor(lock, evchan::kInfiniteTimeout, [&] { return ready; }));
      CPPUNIT_ASSERT(lock.owns_lock());
      ready = false;
      CPPUNIT_ASSERT(!condition.waitFor(lock, Duration::min(), [&] { return ready; }));
      CPPUNIT_ASSERT(lock.owns_lock());
    }
    // A real wait with no deadline, in a task and on a thread, ended by a
    // notification.
    std::atomic<int> woken{0};
    auto channel = singleWorkerChannel();
    std::vector<TaskHandle> tasks;
    tasks.push_back(channel->spawn([&] {
      std::unique_lock<Mutex> lock(mutex);
      if (condition.waitFor(lock, evchan::kInfiniteTimeout, [&] { return ready; })) ++woken;
    }));
    std::thread thread([&] {
      std::unique_lock<Mutex> lock(mutex);
      if (condition.waitFor(lock, evchan::kInfiniteTimeout, [&] { return ready; })) ++woken;
    });
    {
      std::lock_guard<Mutex> lock(mutex);
      ready = true;
    }
    condition.notifyAll();
    thread.join();
    joinAll(tasks);
    CPPUNIT_ASSERT_EQUAL(2, woken.load());
  }

 private:
  // A task waits (`wait`); another wakes it (`wake`) and then computes,
  // never suspending, until the woken one has run (at most a generous 5 s):
  // with a second worker idle, the woken task must run meanwhile.
  template <class Wait, class Wake>
  void expectWokenTaskRunsWhileItsWakerComputes(Wait wait, Wake wake) {
    std::atomic<bool> waiting{false};
    auto channel = evchan::test::makeChannel(2);
    TaskHandle woken = channel->spawn([&] {
      waiting = true;
      wait();
      wokenRan_ = true;
    });
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return waiting.load(); }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    TaskHandle waker = channel->spawn([&] {
      wake();
      computeUntilWokenRan();
    });
    evchan::test::joinWithin(waker, 10s);
    evchan::test::joinWithin(woken, 10s);
    CPPUNIT_ASSERT_MESSAGE("the woken task ran only once its waker stopped computing", ranWhileComputing_.load());
  }

  void computeUntilWokenRan() {
    ranWhileComputing_ = evchan::test::computeUntil(generous(5s), [&] { return wokenRan_.load(); });
  }

  std::atomic<bool> waitingForLock_{false};
  std::atomic<bool> wokenRan_{false};
  std::atomic<bool> ranWhileComputing_{false};
};

CPPUNIT_TEST_SUITE_REGISTRATION(SyncTest);
