// SPDX-License-Identifier: Apache-2.0
// Adversarial tests of the stuck-worker monitor sharing a long item's local
// batch (commit "Pool: the stuck-worker monitor shares what a long item
// woke (its worker's local batch) with an idle worker").  What an item (a
// task slice or a callback) wakes or completes waits in its worker's local
// batch; once the item runs past Options::stuckWorkerGrace the monitor moves
// that batch to the shared run queue, racing the worker that pushes to it
// and pops from it.  These cases wake many tasks, wake them one by one while
// computing, cancel them, shut the channel down and destroy it while they
// sit in the batch, hand a Mutex down a FIFO, block (announced or not) after
// computing, and check that every woken thing runs, once, and that the pool
// does not grow for an item that only computes.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/computing.h"
#include "support/host_behaviour.h"
#include "support/latch.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/slowdown.h"
#include "support/waiting.h"

namespace {

using evchan::test::computeFor;
using evchan::test::Latch;

using namespace std::chrono_literals;
using evchan::ConditionVariable;
using evchan::DispatchEvent;
using evchan::Duration;
using evchan::Event;
using evchan::EventChannel;
using evchan::Mutex;
using evchan::Notification;
using evchan::NotifyEvent;
using evchan::TaskHandle;
using evchan::test::eventually;
using evchan::test::generous;
using evchan::test::joinWithin;

// How long an item computes at most while it waits for what it woke: far
// beyond any grace period, so that a batch never shared shows as a failed
// assertion, never as a hang.
constexpr Duration kComputeLimit = 5s;

int rounds(double plain) { return evchan::test::raceRounds(plain, "EVCHAN_LOCAL_BATCH_ADVERSARIAL_ROUNDS"); }

/// A channel of `threads` workers whose monitor ticks every `grace`.
std::unique_ptr<EventChannel> channelWithGrace(int threads, Duration grace, int maxThreads = 0) {
  EventChannel::Options options;
  options.initialThreads = threads;
  if (maxThreads > 0) options.maxThreads = maxThreads;
  options.stuckWorkerGrace = grace;
  return evchan::test::createOrSkip(options);
}

/// Spins until `done()`, at most kComputeLimit (stretched); whether done()
/// came true.
template <class Done>
bool computeUntil(Done done) {
  return evchan::test::computeUntil(generous(kComputeLimit), done);
}

/// The pool's state, for a failure message.
std::string describePool(const evchan::ThreadPoolStats& stats) {
  return "pool: current " + std::to_string(stats.current) + ", peak " + std::to_string(stats.peak) + ", idle " +
         std::to_string(stats.idle) + ", blocked " + std::to_string(stats.blocked) + ", started " +
         std::to_string(stats.started) + " (presumed stuck " + std::to_string(stats.startedForPresumedStuck) +
         ", growth " + std::to_string(stats.startedForGrowth) + "), runnable past grace " +
         std::to_string(stats.runnablePastGrace);
}

/// Tasks that each wait on their own Notification and count how often the
/// code after the wait ran; for a waker to notify them.
class Sleepers {
 public:
  explicit Sleepers(int count) : notifications_(count), runs_(count) {
    for (auto& run : runs_) run = 0;
  }

  /// Spawns them all and waits until each has started (and so waits, or
  /// is about to).
  void spawn(EventChannel& channel) {
    for (int i = 0; i < size(); ++i) {
      handles_.push_back(channel.spawn([this, i] {
        entered_.fetch_add(1);
        try {
          notifications_[i].wait();
          runs_[i].fetch_add(1);
          ran_.fetch_add(1);
        } catch (const evchan::SystemError& e) {
          if (e.code() == std::errc::operation_canceled) {
            cancelled_.fetch_add(1);
          } else {
            other_.fetch_add(1);
          }
        }
      }));
    }
    CPPUNIT_ASSERT(eventually([&] { return entered_.load() == size(); }));
  }

  int size() const { return static_cast<int>(notifications_.size()); }
  void notify(int i) { notifications_[i].notify(); }
  int ran() const { return ran_.load(); }
  int cancelled() const { return cancelled_.load(); }
  int other() const { return other_.load(); }
  std::vector<TaskHandle>& handles() { return handles_; }

  /// Every task ended; the code after each wait ran exactly once.
  void assertEachRanOnce() {
    for (TaskHandle& handle : handles_) joinWithin(handle);
    for (int i = 0; i < size(); ++i) {
      CPPUNIT_ASSERT_EQUAL_MESSAGE("task " + std::to_string(i) + " after its wait", 1, runs_[i].load());
    }
    CPPUNIT_ASSERT_EQUAL(size(), ran_.load());
    CPPUNIT_ASSERT_EQUAL(0, cancelled_.load() + other_.load());
  }

 private:
  std::vector<Notification> notifications_;
  std::vector<std::atomic<int>> runs_;
  std::vector<TaskHandle> handles_;
  std::atomic<int> entered_{0};
  std::atomic<int> ran_{0};
  std::atomic<int> cancelled_{0};
  std::atomic<int> other_{0};
};


}  // namespace

/// Tasks that each wait on their own Notification and count how the wait
/// ended: passed (woken), cancelled, or any other error.
struct Waiters {
  std::atomic<int> entered{0};
  std::atomic<int> passed{0};
  std::atomic<int> cancelled{0};
  std::atomic<int> other{0};

  /// One task per notification, each in its wait once this returns;
  /// `yieldAfter`: a yield (a cancellation point) after the wake-up.
  std::vector<TaskHandle> spawn(EventChannel& channel, std::vector<Notification>& notifications, bool yieldAfter) {
    std::vector<TaskHandle> tasks;
    for (std::size_t i = 0; i < notifications.size(); ++i) {
      tasks.push_back(channel.spawn([this, &notifications, i, yieldAfter] {
        ++entered;
        try {
          notifications[i].wait();
          if (yieldAfter) evchan::this_task::yield();
          ++passed;
        } catch (const evchan::SystemError& e) {
          if (e.code() == std::errc::operation_canceled) {
            ++cancelled;
          } else {
            ++other;
          }
        }
      }));
    }
    CPPUNIT_ASSERT(eventually([&] { return entered.load() == static_cast<int>(notifications.size()); }));
    return tasks;
  }
};

class LocalBatchAdversarialTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(LocalBatchAdversarialTest);
  CPPUNIT_TEST(testEveryTaskOfAManyWakerRunsWhileItComputes);
  CPPUNIT_TEST(testWakeCountsAroundTheBatchLimitAllRunWhileTheWakerComputes);
  CPPUNIT_TEST(testTasksWokenOneByOneWhileTheWakerComputesAllRunOnce);
  CPPUNIT_TEST(testOneNotifyPastTheGracePeriodWakesTasksThatEndAtOnce);
  CPPUNIT_TEST(testAChainOfComputingWakersOverlaps);
  CPPUNIT_TEST(testOneWorkerDoesNotGrowForAComputingWaker);
  CPPUNIT_TEST(testOneWorkerWakerThatBlocksUnannouncedAfterComputingIsRescued);
  CPPUNIT_TEST(testOneWorkerWakerThatBlocksUnannouncedAtOnceIsRescued);
  CPPUNIT_TEST(testAWakerThatCallsBlockingAfterComputingLetsTheWokenRun);
  CPPUNIT_TEST(testABatchKeptAloneIsSharedOnceBlockingStartsASecondWorker);
  CPPUNIT_TEST(testQueuedWorkRunsBesideAPingPongThatWakesMany);
  CPPUNIT_TEST(testACallbackThatPostsEventsAndComputesSharesThem);
  CPPUNIT_TEST(testACallbackPostingAroundTheBatchLimitSharesThem);
  CPPUNIT_TEST(testReadsPostedByALongCallbackRunWhileItComputes);
  CPPUNIT_TEST(testMutexHandOffsKeepFifoOrderWhenShared);
  CPPUNIT_TEST(testConditionVariableNotifyAllThenCompute);
  CPPUNIT_TEST(testWokenTasksCancelledWhileTheirWakerComputes);
  CPPUNIT_TEST(testShutdownWhileWokenTasksSitInALongItemsBatch);
  CPPUNIT_TEST(testChannelDestroyedWhileACallbacksBatchIsShared);
  CPPUNIT_TEST(testATaskThatYieldsRepeatedlyWhileItsBatchIsTaken);
  CPPUNIT_TEST(testWakersOnEveryWorkerRaceTheMonitor);
  CPPUNIT_TEST(testTasksOfAnotherChannelWokenByAComputingTaskRunAtOnce);
  CPPUNIT_TEST_SUITE_END();

 public:
  // 150 tasks woken in one slice (more than a local batch holds: the rest
  // go to the shared queue), then the waker computes: every one runs on
  // the other worker meanwhile, and none twice.
  void testEveryTaskOfAManyWakerRunsWhileItComputes() {
    Sleepers sleepers(150);
    auto channel = channelWithGrace(2, 1ms);
    sleepers.spawn(*channel);
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    std::atomic<bool> allRanWhileComputing{false};
    TaskHandle waker = channel->spawn([&] {
      for (int i = 0; i < sleepers.size(); ++i) sleepers.notify(i);
      allRanWhileComputing = computeUntil([&] { return sleepers.ran() == sleepers.size(); });
    });
    joinWithin(waker, 10s);
    CPPUNIT_ASSERT_MESSAGE("only " + std::to_string(sleepers.ran()) + " of 150 ran while their waker computed",
                           allRanWhileComputing.load());
    sleepers.assertEachRanOnce();
  }

  // The same around a local batch's bound (64 at this writing): the wake-up
  // just past it goes to the shared queue without waking anyone (the
  // worker's own batch is expected to reach it first), the ones after it
  // wake a worker.  On two workers the idle one is the poller, asleep in
  // the backend: every count must run on it while the waker computes.
  void testWakeCountsAroundTheBatchLimitAllRunWhileTheWakerComputes() {
    for (int count = 60; count <= 70; ++count) {
      Sleepers sleepers(count);
      std::string failure;
      auto channel = channelWithGrace(2, 1ms);
      sleepers.spawn(*channel);
      CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
      TaskHandle waker = channel->spawn([&] {
        for (int i = 0; i < sleepers.size(); ++i) sleepers.notify(i);
        if (computeUntil([&] { return sleepers.ran() == sleepers.size(); })) return;
        failure = std::to_string(sleepers.ran()) + " of " + std::to_string(count) +
                  " ran while their waker computed; " + describePool(channel->poolStats());
      });
      joinWithin(waker, 10s);
      CPPUNIT_ASSERT_MESSAGE(std::to_string(count) + " woken: " + failure, failure.empty());
      sleepers.assertEachRanOnce();
    }
  }

  // The waker pushes to its batch while the monitor takes it: one wake-up
  // every 100 us over several grace periods of 1 ms, rounds of it.
  void testTasksWokenOneByOneWhileTheWakerComputesAllRunOnce() {
    for (int round = 0, n = rounds(6); round < n; ++round) {
      Sleepers sleepers(80);
      auto channel = channelWithGrace(2, 1ms);
      sleepers.spawn(*channel);
      CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
      std::atomic<bool> allRanWhileComputing{false};
      TaskHandle waker = channel->spawn([&] {
        for (int i = 0; i < sleepers.size(); ++i) {
          sleepers.notify(i);
          computeFor(100us);
        }
        allRanWhileComputing = computeUntil([&] { return sleepers.ran() == sleepers.size(); });
      });
      joinWithin(waker, 10s);
      CPPUNIT_ASSERT_MESSAGE("round " + std::to_string(round) + ": only " + std::to_string(sleepers.ran()) +
                                 " of 80 ran while their waker computed",
                             allRanWhileComputing.load());
      sleepers.assertEachRanOnce();
    }
  }

  // One notify() of a Notification 200 tasks wait on, from a slice
  // already past its grace period: the monitor may take the batch while
  // notify() is still signalling, and the woken tasks end at once (their
  // waits' records gone) while it goes on.  Rounds of it.
  void testOneNotifyPastTheGracePeriodWakesTasksThatEndAtOnce() {
    constexpr int kTasks = 200;
    for (int round = 0, n = rounds(20); round < n; ++round) {
      Notification notification;
      std::atomic<int> started{0};
      std::atomic<int> ended{0};
      std::vector<TaskHandle> tasks;
      std::string failure;
      auto channel = channelWithGrace(2, 1ms);
      for (int i = 0; i < kTasks; ++i) {
        tasks.push_back(channel->spawn([&] {
          ++started;
          notification.wait();
          ++ended;
        }));
      }
      CPPUNIT_ASSERT(eventually([&] { return started.load() == kTasks; }));
      CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
      TaskHandle waker = channel->spawn([&] {
        computeFor(std::chrono::microseconds(1500 + 100 * (round % 10)));
        notification.notify();
        if (computeUntil([&] { return ended.load() == kTasks; })) return;
        failure = std::to_string(ended.load()) + " of 200 ended while their waker computed; " +
                  describePool(channel->poolStats());
      });
      joinWithin(waker, 10s);
      for (TaskHandle& task : tasks) joinWithin(task);
      CPPUNIT_ASSERT_MESSAGE("round " + std::to_string(round) + ": " + failure, failure.empty());
      CPPUNIT_ASSERT_EQUAL(kTasks, ended.load());
    }
  }

  // Tasks in a chain: each, woken by the one before, wakes the next and
  // computes until the next has started.  Each link's wake-up sits in the
  // batch of a slice that computes; the slices overlap across two
  // workers, the next link running on the worker the previous one left.
  void testAChainOfComputingWakersOverlaps() {
    constexpr int kLinks = 30;
    std::vector<Notification> links(kLinks);
    std::vector<std::atomic<int>> started(kLinks);
    for (auto& count : started) count = 0;
    std::atomic<int> entered{0};
    std::atomic<int> overlapped{0};
    std::vector<TaskHandle> tasks;
    auto channel = channelWithGrace(2, 1ms);
    for (int i = 0; i < kLinks; ++i) {
      tasks.push_back(channel->spawn([&, i] {
        ++entered;
        links[i].wait();
        started[i].fetch_add(1);
        if (i + 1 == kLinks) return;
        links[i + 1].notify();
        if (computeUntil([&] { return started[i + 1].load() > 0; })) ++overlapped;
      }));
    }
    CPPUNIT_ASSERT(eventually([&] { return entered.load() == kLinks; }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    links[0].notify();
    for (TaskHandle& task : tasks) joinWithin(task, 20s);
    for (int i = 0; i < kLinks; ++i) CPPUNIT_ASSERT_EQUAL(1, started[i].load());
    CPPUNIT_ASSERT_EQUAL(kLinks - 1, overlapped.load());
  }

  // One worker: the monitor moves the batch to the run queue, but no
  // thread is started for an item that only computes (it is runnable, not
  // stuck); the woken task runs after its waker's slice, on the same
  // worker.
  void testOneWorkerDoesNotGrowForAComputingWaker() {
    if (const std::string why = evchan::test::whyAComputingWorkerMayBePresumedBlocked(); !why.empty()) EVCHAN_SKIP(why);
    Sleepers sleepers(10);
    auto channel = channelWithGrace(1, 1ms);
    sleepers.spawn(*channel);
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    std::atomic<bool> wakerEnded{false};
    std::atomic<int> ranDuringCompute{-1};
    std::atomic<bool> monitorLooked{false};
    TaskHandle waker = channel->spawn([&] {
      for (int i = 0; i < sleepers.size(); ++i) sleepers.notify(i);
      // The monitor has judged this item past its grace period (and so
      // has taken its batch first): then a few more grace periods.
      monitorLooked = computeUntil([&] { return channel->poolStats().runnablePastGrace > 0; });
      computeFor(20ms);
      ranDuringCompute = sleepers.ran();
      wakerEnded = true;
    });
    joinWithin(waker, 10s);
    CPPUNIT_ASSERT_MESSAGE("the monitor never judged the computing item", monitorLooked.load());
    sleepers.assertEachRanOnce();
    CPPUNIT_ASSERT_EQUAL(0, ranDuringCompute.load());
    const evchan::ThreadPoolStats stats = channel->poolStats();
    CPPUNIT_ASSERT_EQUAL(1, stats.peak);
    CPPUNIT_ASSERT_EQUAL(std::uint64_t(0), stats.startedForPresumedStuck);
  }

  // One worker: the waker computes past its grace period (its batch is
  // moved to the run queue, nobody to run it), then blocks unannounced
  // until the woken task has run.  The monitor finds it stuck and starts
  // a spare thread, which must find the woken task in the run queue.
  void testOneWorkerWakerThatBlocksUnannouncedAfterComputingIsRescued() {
    std::unique_ptr<EventChannel> channel = expectOneWorkerWakerThatBlocksRescued(true, 0);
    CPPUNIT_ASSERT(channel->poolStats().startedForPresumedStuck >= 1);
  }

  // The same, blocking at once: the batch is still the worker's when the
  // monitor finds the item stuck.
  void testOneWorkerWakerThatBlocksUnannouncedAtOnceIsRescued() {
    for (int round = 0, n = rounds(4); round < n; ++round) expectOneWorkerWakerThatBlocksRescued(false, round);
  }

  // A waker computes past its grace (its batch moved to the run queue),
  // then announces a blocking call that waits for the woken tasks: they
  // run on the thread started for the call.
  void testAWakerThatCallsBlockingAfterComputingLetsTheWokenRun() {
    Sleepers sleepers(20);
    auto channel = channelWithGrace(1, 1ms);
    sleepers.spawn(*channel);
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    std::atomic<bool> sawThem{false};
    TaskHandle waker = channel->spawn([&] {
      for (int i = 0; i < sleepers.size(); ++i) sleepers.notify(i);
      computeUntil([&] { return channel->poolStats().runnablePastGrace > 0; });
      sawThem = evchan::blocking([&] { return eventually([&] { return sleepers.ran() == sleepers.size(); }); });
    });
    joinWithin(waker, 10s);
    CPPUNIT_ASSERT_MESSAGE(std::to_string(sleepers.ran()) + " of 20 ran while their waker was in blocking()",
                           sawThem.load());
    sleepers.assertEachRanOnce();
  }

  // The pool's only worker keeps its local batch to itself.  A blocking()
  // call in one of its items starts a second worker; from the next item
  // on, the rest of the batch is shared again (a batch that went on
  // unshared: the second task waited out the first one's 3 s).  Here the first task woken
  // waits (unannounced, on a std::condition_variable) for the second one,
  // which then can only run on the new worker; the monitor's grace is far
  // longer than the test waits, so it does not step in.
  void testABatchKeptAloneIsSharedOnceBlockingStartsASecondWorker() {
    // What the tasks and the callback use comes before the channel: a
    // failed assertion destroys the channel first, which ends them.
    evchan::Notification wakeFirst, wakeSecond;
    std::mutex mutex;
    std::condition_variable cv;
    bool secondRan = false;  // under mutex
    std::atomic<int> outcome{-1};
    std::atomic<bool> wakerDone{false};
    // A callback, not a task: a task would resume from blocking() in a
    // new item, its batch begun with two workers already.
    DispatchEvent waker([&] {
      evchan::blocking([] { std::this_thread::sleep_for(50ms); });
      wakeFirst.notify();  // both go to this worker's local batch, in order
      wakeSecond.notify();
    });
    waker.setCallback([&](Event&) { wakerDone = true; });
    auto channel = channelWithGrace(1, 60s, 2);
    TaskHandle first = channel->spawn([&] {
      wakeFirst.wait();
      std::unique_lock<std::mutex> lock(mutex);
      outcome = cv.wait_for(lock, evchan::test::generous(3s), [&] { return secondRan; }) ? 1 : 0;
    });
    TaskHandle second = channel->spawn([&] {
      wakeSecond.wait();
      std::lock_guard<std::mutex> lock(mutex);
      secondRan = true;
      cv.notify_all();
    });
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    channel->post(waker);
    CPPUNIT_ASSERT(eventually([&] { return wakerDone.load(); }, 10s));
    joinWithin(first, 10s);
    joinWithin(second, 10s);
    CPPUNIT_ASSERT_EQUAL(2, channel->poolStats().peak);
    CPPUNIT_ASSERT_MESSAGE("the second task waited in the batch of a worker blocked by the first", outcome.load() == 1);
  }

  // A worker alone runs a poll's batch as its own only while nothing is
  // queued for it.  Two tasks ping-pong a byte over a connection and each
  // one, at every byte, wakes 300 tasks (far more than a local batch
  // holds: the rest are queued, and enough of them wait again each time),
  // so that every poll finds a completion and every batch makes the next
  // poll due at once.  A DispatchEvent posted from this thread
  // must still run: had each poll's batch gone ahead of the queue, it
  // would have waited as long as the ping-pong went on.
  void testQueuedWorkRunsBesideAPingPongThatWakesMany() {
    // What the tasks use comes before the channel: a failed assertion
    // destroys the channel first, which ends them.
    constexpr int kWoken = 300;
    std::vector<Notification> wakes(kWoken);
    std::atomic<bool> stop{false};
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    std::atomic<long> exchanges{0};
    std::atomic<bool> dispatched{false};
    DispatchEvent queued([] {});
    queued.setCallback([&](Event&) { dispatched = true; });
    auto channel = channelWithGrace(1, 5ms);
    std::vector<TaskHandle> woken;
    for (int i = 0; i < kWoken; ++i) {
      woken.push_back(channel->spawn([&, i] {
        while (!stop.load()) {
          wakes[i].wait();
          wakes[i].reset();
        }
      }));
    }
    TaskHandle pinger = channel->spawn([&] {
      char byte = 'p';
      std::error_code ec;
      while (!stop.load() && !ec) {
        if (!pair.client.writeAll(&byte, 1, ec)) break;
        if (!pair.client.readExactly(&byte, 1, ec)) break;
        for (Notification& wake : wakes) wake.notify();
        ++exchanges;
      }
    });
    TaskHandle ponger = channel->spawn([&] {
      char byte;
      std::error_code ec;
      while (pair.server.readExactly(&byte, 1, ec) == 1 && pair.server.writeAll(&byte, 1, ec) == 1) {
        for (Notification& wake : wakes) wake.notify();
      }
    });
    CPPUNIT_ASSERT(eventually([&] { return exchanges.load() > 100; }));
    channel->post(queued);
    const bool ranBeside = eventually([&] { return dispatched.load(); }, 3s);
    const long exchangesMeanwhile = exchanges.load();
    stop = true;
    for (Notification& wake : wakes) wake.notify();
    joinWithin(pinger);
    pair.client.close();  // the ponger reads the end of the stream
    joinWithin(ponger);
    for (TaskHandle& task : woken) joinWithin(task);
    CPPUNIT_ASSERT(eventually([&] { return dispatched.load(); }));  // once the ping-pong stopped, at the latest
    CPPUNIT_ASSERT_MESSAGE("a posted event waited behind a ping-pong (" + std::to_string(exchangesMeanwhile) +
                               " exchanges)",
                           ranBeside);
  }

  // A callback, not a task: a DispatchEvent's function posts NotifyEvents
  // and DispatchEvents (completed at once, into its local batch, 80 in
  // all: more than the batch holds) and computes until their callbacks
  // ran.
  void testACallbackThatPostsEventsAndComputesSharesThem() {
    constexpr int kEach = 40;
    std::vector<std::atomic<int>> notified(kEach);
    std::vector<std::atomic<int>> dispatched(kEach);
    for (int i = 0; i < kEach; ++i) notified[i] = dispatched[i] = 0;
    std::atomic<int> total{0};
    std::vector<std::unique_ptr<NotifyEvent>> notifies;
    std::vector<std::unique_ptr<DispatchEvent>> dispatches;
    for (int i = 0; i < kEach; ++i) {
      notifies.push_back(std::make_unique<NotifyEvent>());
      notifies.back()->setCallback([&, i](Event& event) {
        if (!event.error()) notified[i].fetch_add(1);
        total.fetch_add(1);
      });
      dispatches.push_back(std::make_unique<DispatchEvent>([&, i] { dispatched[i].fetch_add(1); }));
      dispatches.back()->setCallback([&](Event&) { total.fetch_add(1); });
    }
    std::atomic<bool> allRanWhileComputing{false};
    std::atomic<bool> longOneDone{false};
    EventChannel* target = nullptr;  // the channel, created last: destroyed first
    DispatchEvent longOne([&] {
      for (int i = 0; i < kEach; ++i) {
        target->post(*notifies[i]);
        target->post(*dispatches[i]);
      }
      allRanWhileComputing = computeUntil([&] { return total.load() == 2 * kEach; });
    });
    longOne.setCallback([&](Event&) { longOneDone = true; });
    auto channel = channelWithGrace(2, 1ms);
    target = channel.get();
    channel->post(longOne);
    CPPUNIT_ASSERT(eventually([&] { return longOneDone.load(); }));
    CPPUNIT_ASSERT_MESSAGE(std::to_string(total.load()) + " of 80 callbacks ran while the posting callback computed",
                           allRanWhileComputing.load());
    CPPUNIT_ASSERT(!longOne.error());
    CPPUNIT_ASSERT(eventually([&] { return total.load() == 2 * kEach; }));
    for (int i = 0; i < kEach; ++i) {
      CPPUNIT_ASSERT_EQUAL(1, notified[i].load());
      CPPUNIT_ASSERT_EQUAL(1, dispatched[i].load());
    }
    channel.reset();
    CPPUNIT_ASSERT_EQUAL(2 * kEach, total.load());  // nothing ran twice at the end
  }

  // The same with NotifyEvents alone, their number around a local batch's
  // bound (see testWakeCountsAroundTheBatchLimitAllRunWhileTheWakerComputes),
  // the posting callback itself posted from the main thread or from a task
  // (then it runs after the task's slice, on its worker).
  void testACallbackPostingAroundTheBatchLimitSharesThem() {
    for (int variant = 0; variant < 14; ++variant) {
      const int count = 62 + variant / 2;
      const bool fromTask = variant % 2 == 1;
      std::vector<std::unique_ptr<NotifyEvent>> events;
      std::vector<std::atomic<int>> calls(count);
      std::atomic<int> total{0};
      for (int i = 0; i < count; ++i) {
        calls[i] = 0;
        events.push_back(std::make_unique<NotifyEvent>());
        events.back()->setCallback([&, i](Event&) {
          calls[i].fetch_add(1);
          total.fetch_add(1);
        });
      }
      std::string failure;
      std::atomic<bool> longOneDone{false};
      EventChannel* target = nullptr;  // the channel, created last: destroyed first
      DispatchEvent longOne([&] {
        for (int i = 0; i < count; ++i) target->post(*events[i]);
        if (computeUntil([&] { return total.load() == count; })) return;
        failure = std::to_string(total.load()) + " of " + std::to_string(count) +
                  " callbacks ran while the posting callback computed; " + describePool(target->poolStats());
      });
      longOne.setCallback([&](Event&) { longOneDone = true; });
      auto channel = channelWithGrace(2, 1ms);
      target = channel.get();
      // A first item, then rest: one worker polls (asleep in the backend),
      // the other idles, and takes the posting callback.
      channel->spawn([] {}).join();
      CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
      if (fromTask) {
        channel->spawn([&] { target->post(longOne); }).join();
      } else {
        channel->post(longOne);
      }
      CPPUNIT_ASSERT(eventually([&] { return longOneDone.load(); }));
      CPPUNIT_ASSERT_MESSAGE(std::to_string(count) + " posted, from " + (fromTask ? "a task" : "the main thread") +
                                 ": " + failure,
                             failure.empty());
      channel.reset();
      for (int i = 0; i < count; ++i) CPPUNIT_ASSERT_EQUAL(1, calls[i].load());
    }
  }

  // Socket reads whose data is already there, posted by a callback that
  // then computes: however the backend completes them (inline, into the
  // callback's batch, or through a poll), each read's callback runs once,
  // with its bytes, while the posting callback computes.
  void testReadsPostedByALongCallbackRunWhileItComputes() {
    constexpr int kPairs = 8;
    std::vector<evchan::test::ConnectedPair> pairs;
    std::vector<std::unique_ptr<evchan::ReadEvent>> reads;
    std::vector<std::array<char, 16>> buffers(kPairs);
    std::vector<std::atomic<int>> calls(kPairs);
    std::vector<std::size_t> bytes(kPairs, 0);
    std::atomic<int> total{0};
    for (int i = 0; i < kPairs; ++i) {
      calls[i] = 0;
      pairs.push_back(evchan::test::connectPair());
      const std::string message = "ping " + std::to_string(i);
      pairs.back().client.writeAll(message.data(), message.size());
    }
    for (int i = 0; i < kPairs; ++i) {
      reads.push_back(std::make_unique<evchan::ReadEvent>(pairs[i].server, buffers[i].data(), buffers[i].size()));
      reads.back()->setCallback([&, i](Event& event) {
        if (!event.error()) bytes[i] = reads[i]->bytesTransferred();
        calls[i].fetch_add(1);
        total.fetch_add(1);
      });
    }
    std::atomic<bool> allRanWhileComputing{false};
    std::atomic<bool> longOneDone{false};
    EventChannel* target = nullptr;  // the channel, created last: destroyed first
    DispatchEvent longOne([&] {
      for (int i = 0; i < kPairs; ++i) target->post(*reads[i]);
      allRanWhileComputing = computeUntil([&] { return total.load() == kPairs; });
    });
    longOne.setCallback([&](Event&) { longOneDone = true; });
    auto channel = channelWithGrace(2, 1ms);
    target = channel.get();
    channel->post(longOne);
    CPPUNIT_ASSERT(eventually([&] { return longOneDone.load(); }));
    CPPUNIT_ASSERT_MESSAGE(std::to_string(total.load()) + " of 8 reads ran while the posting callback computed",
                           allRanWhileComputing.load());
    CPPUNIT_ASSERT(!longOne.error());
    channel.reset();
    for (int i = 0; i < kPairs; ++i) {
      const std::string message = "ping " + std::to_string(i);
      CPPUNIT_ASSERT_EQUAL(1, calls[i].load());
      CPPUNIT_ASSERT_EQUAL(message.size(), bytes[i]);
      CPPUNIT_ASSERT_EQUAL(message, std::string(buffers[i].data(), bytes[i]));
    }
  }

  // A Mutex handed down a queue of tasks, each of which computes past the
  // grace period after its unlock (so that each hand-off is moved by the
  // monitor): the order stays FIFO, and the queue drains while its first
  // holder computes.
  void testMutexHandOffsKeepFifoOrderWhenShared() {
    constexpr int kWaiters = 6;
    Mutex mutex;
    Notification go;
    std::atomic<bool> held{false};
    std::vector<int> order;  // under mutex
    std::atomic<int> done{0};
    std::atomic<bool> drainedWhileComputing{false};
    auto channel = channelWithGrace(3, 1ms);
    TaskHandle holder = channel->spawn([&] {
      mutex.lock();
      held = true;
      go.wait();
      mutex.unlock();
      drainedWhileComputing = computeUntil([&] { return done.load() == kWaiters; });
    });
    CPPUNIT_ASSERT(eventually([&] { return held.load(); }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    std::vector<TaskHandle> waiters;
    std::atomic<int> started{0};
    for (int i = 0; i < kWaiters; ++i) {
      waiters.push_back(channel->spawn([&, i] {
        ++started;
        mutex.lock();
        order.push_back(i);
        mutex.unlock();
        computeFor(3ms);
        ++done;
      }));
      // Waiter i parks in lock() before the next is spawned.
      CPPUNIT_ASSERT(eventually([&] { return started.load() == i + 1; }));
      CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    }
    go.notify();
    joinWithin(holder, 10s);
    for (TaskHandle& waiter : waiters) joinWithin(waiter);
    CPPUNIT_ASSERT((order == std::vector<int>{0, 1, 2, 3, 4, 5}));
    CPPUNIT_ASSERT_MESSAGE(std::to_string(done.load()) + " of 6 had the mutex while its first holder computed",
                           drainedWhileComputing.load());
  }

  // notifyAll() on 30 waiters, then the notifier computes: they all wake
  // (re-taking the mutex one after another) on the other worker.
  void testConditionVariableNotifyAllThenCompute() {
    constexpr int kWaiters = 30;
    Mutex mutex;
    ConditionVariable condition;
    bool released = false;  // under mutex
    std::atomic<int> started{0};
    std::atomic<int> woken{0};
    std::vector<TaskHandle> waiters;
    auto channel = channelWithGrace(2, 1ms);
    for (int i = 0; i < kWaiters; ++i) {
      waiters.push_back(channel->spawn([&] {
        std::unique_lock<Mutex> lock(mutex);
        ++started;
        condition.wait(lock, [&] { return released; });
        ++woken;
      }));
    }
    CPPUNIT_ASSERT(eventually([&] { return started.load() == kWaiters; }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    std::atomic<bool> allWokeWhileComputing{false};
    TaskHandle notifier = channel->spawn([&] {
      {
        std::lock_guard<Mutex> lock(mutex);
        released = true;
      }
      condition.notifyAll();
      allWokeWhileComputing = computeUntil([&] { return woken.load() == kWaiters; });
    });
    joinWithin(notifier, 10s);
    for (TaskHandle& waiter : waiters) joinWithin(waiter);
    CPPUNIT_ASSERT_EQUAL(kWaiters, woken.load());
    CPPUNIT_ASSERT_MESSAGE(std::to_string(woken.load()) + " of 30 woke while their notifier computed",
                           allWokeWhileComputing.load());
  }

  // The waker notifies tasks and cancels every other one (before or after
  // the notify), then computes: a cancelled task's resume may already sit
  // in the batch (the cancel must not schedule it twice), or be moved by
  // the monitor as the cancel comes.  Each task ends exactly once, the
  // cancelled ones cancelled, the others woken.
  void testWokenTasksCancelledWhileTheirWakerComputes() {
    constexpr int kTasks = 24;
    for (int round = 0, n = rounds(12); round < n; ++round) {
      std::vector<Notification> notifications(kTasks);
      Waiters waiters;
      auto channel = channelWithGrace(2, 1ms);
      // A yield after the wake-up: a cancellation point.
      std::vector<TaskHandle> tasks = waiters.spawn(*channel, notifications, true);
      std::atomic<int>& passed = waiters.passed;
      std::atomic<int>& cancelled = waiters.cancelled;
      std::atomic<int>& other = waiters.other;
      CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
      std::atomic<int> cancelRefused{0};
      TaskHandle waker = channel->spawn([&] {
        for (int i = 0; i < kTasks; ++i) {
          const bool cancel = i % 2 == 1;
          const bool cancelFirst = (i / 2 + round) % 2 == 0;
          if (cancel && cancelFirst && !tasks[i].cancel()) ++cancelRefused;
          notifications[i].notify();
          if (cancel && !cancelFirst && !tasks[i].cancel()) ++cancelRefused;
          if (i % 4 == 3) computeFor(300us);
        }
        computeUntil([&] { return passed.load() + cancelled.load() + other.load() == kTasks; });
      });
      joinWithin(waker, 10s);
      for (TaskHandle& task : tasks) joinWithin(task);
      const std::string where = "round " + std::to_string(round);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, 0, cancelRefused.load());
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, 0, other.load());
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, kTasks / 2, passed.load());
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, kTasks / 2, cancelled.load());
    }
  }

  // shutdown() and the channel's destruction while the woken tasks sit in
  // a long item's batch, or are being moved from it (to the run queue of
  // a pool with nobody else to run them, every other round): every task
  // ends, once, either woken or cancelled by the shutdown.
  void testShutdownWhileWokenTasksSitInALongItemsBatch() {
    constexpr int kTasks = 20;
    for (int round = 0, n = rounds(16); round < n; ++round) {
      std::vector<Notification> notifications(kTasks);  // outlive every wait
      Waiters waiters;
      std::atomic<bool> computing{false};
      auto channel = channelWithGrace(round % 2 == 0 ? 2 : 1, 1ms);
      std::vector<TaskHandle> tasks = waiters.spawn(*channel, notifications, false);
      std::atomic<int>& passed = waiters.passed;
      std::atomic<int>& cancelled = waiters.cancelled;
      std::atomic<int>& other = waiters.other;
      CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
      TaskHandle waker = channel->spawn([&] {
        for (int i = 0; i < kTasks; ++i) notifications[i].notify();
        computing = true;
        computeFor(4ms);
      });
      CPPUNIT_ASSERT(eventually([&] { return computing.load(); }));
      computeFor(std::chrono::microseconds(250 * (round / 2 % 12)));  // before, at and after the grace period
      channel->shutdown();
      channel.reset();
      const std::string where = "round " + std::to_string(round);
      CPPUNIT_ASSERT_MESSAGE(where + ": the waker did not end", waker.done());
      waker.join();
      for (TaskHandle& task : tasks) {
        CPPUNIT_ASSERT_MESSAGE(where + ": a woken task did not end", task.done());
        task.join();
      }
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, 0, other.load());
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where + " (passed " + std::to_string(passed.load()) + ")", kTasks,
                                   passed.load() + cancelled.load());
    }
  }

  // A callback posts NotifyEvents (completed at once, into its batch) and
  // computes while the main thread destroys the channel: every event
  // posted has its callback run exactly once.
  void testChannelDestroyedWhileACallbacksBatchIsShared() {
    constexpr int kEvents = 30;
    for (int round = 0, n = rounds(20); round < n; ++round) {
      std::vector<std::atomic<int>> calls(kEvents);
      for (auto& call : calls) call = 0;
      std::vector<std::unique_ptr<NotifyEvent>> events;
      for (int i = 0; i < kEvents; ++i) {
        events.push_back(std::make_unique<NotifyEvent>());
        events.back()->setCallback([&calls, i](Event&) { calls[i].fetch_add(1); });
      }
      std::vector<bool> posted(kEvents, false);
      std::atomic<bool> computing{false};
      std::atomic<int> longOneCalls{0};
      EventChannel* target = nullptr;  // the channel, created last: destroyed first
      DispatchEvent longOne([&] {
        for (int i = 0; i < kEvents; ++i) {
          std::error_code ec;
          target->post(*events[i], ec);
          posted[i] = !ec;
          if (i == kEvents / 2) computing = true;
        }
        computeFor(3ms);
      });
      longOne.setCallback([&](Event&) { ++longOneCalls; });
      auto channel = channelWithGrace(2, 1ms);
      target = channel.get();
      channel->post(longOne);
      CPPUNIT_ASSERT(eventually([&] { return computing.load(); }));
      computeFor(std::chrono::microseconds(300 * (round % 12)));
      // The posting callback races the shutdown (a post may be refused);
      // the destruction comes once the pool has gone, as the API requires.
      channel->shutdown();
      channel.reset();
      const std::string where = "round " + std::to_string(round);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, 1, longOneCalls.load());
      for (int i = 0; i < kEvents; ++i) {
        CPPUNIT_ASSERT_EQUAL_MESSAGE(where + ", event " + std::to_string(i), posted[i] ? 1 : 0, calls[i].load());
      }
    }
  }

  // A task wakes one sleeper, computes past the grace period and yields,
  // over and over: its batch is taken while it computes and it is itself
  // requeued by each yield.  Every sleeper runs once; the yielder finishes.
  void testATaskThatYieldsRepeatedlyWhileItsBatchIsTaken() {
    Sleepers sleepers(40);
    auto channel = channelWithGrace(2, 1ms);
    sleepers.spawn(*channel);
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    std::atomic<int> iterations{0};
    std::atomic<bool> allRan{false};
    TaskHandle yielder = channel->spawn([&] {
      for (int i = 0; i < sleepers.size(); ++i) {
        sleepers.notify(i);
        computeFor(i % 3 == 0 ? 2500us : 200us);
        evchan::this_task::yield();
        ++iterations;
      }
      allRan = computeUntil([&] { return sleepers.ran() == sleepers.size(); });
    });
    joinWithin(yielder, 10s);
    CPPUNIT_ASSERT_EQUAL(sleepers.size(), iterations.load());
    CPPUNIT_ASSERT(allRan.load());
    sleepers.assertEachRanOnce();
  }

  // Two wakers at once, one on each worker of three, each waking its own
  // sleepers progressively and computing: the monitor takes both batches
  // in one tick while both workers push.  Rounds of it.
  void testWakersOnEveryWorkerRaceTheMonitor() {
    for (int round = 0, n = rounds(6); round < n; ++round) {
      Sleepers first(40);
      Sleepers second(40);
      std::string firstFailure;
      std::string secondFailure;
      auto channel = channelWithGrace(3, 1ms);
      first.spawn(*channel);
      second.spawn(*channel);
      CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
      // On failure: how many had run when their waker gave up, and the pool then.
      auto wakeAll = [&channel](Sleepers& sleepers, std::string& failure) {
        for (int i = 0; i < sleepers.size(); ++i) {
          sleepers.notify(i);
          computeFor(50us);
        }
        if (computeUntil([&] { return sleepers.ran() == sleepers.size(); })) return;
        failure = std::to_string(sleepers.ran()) + " of 40 ran while their waker computed; " +
                  describePool(channel->poolStats());
      };
      TaskHandle a = channel->spawn([&] { wakeAll(first, firstFailure); });
      TaskHandle b = channel->spawn([&] { wakeAll(second, secondFailure); });
      joinWithin(a, 10s);
      joinWithin(b, 10s);
      const std::string where = "round " + std::to_string(round);
      CPPUNIT_ASSERT_MESSAGE(where + ", first waker: " + firstFailure + "; second: " + secondFailure,
                             firstFailure.empty() && secondFailure.empty());
      first.assertEachRanOnce();
      second.assertEachRanOnce();
    }
  }

  // A task of a one-worker channel wakes 100 tasks of another one-worker
  // channel, then computes: they belong to the other channel's pool, never
  // to the waker's batch, and run there at once.
  void testTasksOfAnotherChannelWokenByAComputingTaskRunAtOnce() {
    Sleepers sleepers(100);
    std::string failure;
    auto theirs = channelWithGrace(1, 1ms);
    auto wakers = channelWithGrace(1, 1ms);
    sleepers.spawn(*theirs);
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*theirs));
    TaskHandle waker = wakers->spawn([&] {
      for (int i = 0; i < sleepers.size(); ++i) sleepers.notify(i);
      if (computeUntil([&] { return sleepers.ran() == sleepers.size(); })) return;
      failure = std::to_string(sleepers.ran()) + " of 100 ran while the other channel's task computed; theirs: " +
                describePool(theirs->poolStats()) + "; the waker's: " + describePool(wakers->poolStats());
    });
    joinWithin(waker, 10s);
    CPPUNIT_ASSERT_MESSAGE(failure, failure.empty());
    sleepers.assertEachRanOnce();
  }

 private:
  // A one-worker channel: a task waits on a Notification; another notifies
  // it, computes past its grace period first when `computeFirst`, then
  // blocks unannounced until the woken task has run, which must happen.
  // The channel is returned for its statistics.
  std::unique_ptr<EventChannel> expectOneWorkerWakerThatBlocksRescued(bool computeFirst, int round) {
    Latch wokenRan;
    std::atomic<bool> sawIt{false};
    Notification notification;
    std::atomic<bool> waiting{false};
    auto channel = channelWithGrace(1, 1ms);
    TaskHandle woken = channel->spawn([&] {
      waiting = true;
      notification.wait();
      wokenRan.open();
    });
    CPPUNIT_ASSERT(eventually([&] { return waiting.load(); }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    EventChannel* ch = channel.get();
    TaskHandle waker = channel->spawn([&] {
      notification.notify();
      if (computeFirst) computeUntil([&] { return ch->poolStats().runnablePastGrace > 0; });
      sawIt = wokenRan.waitFor(generous(kComputeLimit));
    });
    joinWithin(waker, 10s);
    joinWithin(woken, 10s);
    CPPUNIT_ASSERT_MESSAGE("round " + std::to_string(round) +
                               ": the woken task did not run while its one-worker waker blocked",
                           sawIt.load());
    return channel;
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(LocalBatchAdversarialTest);
