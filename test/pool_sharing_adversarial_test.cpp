// SPDX-License-Identifier: Apache-2.0
// Adversarial tests of when the pool shares a poll's completions with an
// idle worker (commit "a poll's completions are shared with an idle worker
// only when they outlast a wake-up"): a batch that looks short stays with
// the worker that polled, and relies on a later check (the next item taken,
// or the stuck-worker monitor's tick) when its first item runs long.  These
// cases make that first item long, blocking, a task, or the last one before
// shutdown, with the monitor on and off, on one worker and on two.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/computing.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/reclaim_on_exit.h"
#include "support/skip.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::Duration;
using evchan::Event;
using evchan::EventChannel;
using evchan::TaskHandle;
using evchan::TimerEvent;
using Clock = std::chrono::steady_clock;
using evchan::test::eventually;
using evchan::test::generous;
using evchan::test::ReclaimOnExit;

// An item that waits for another gives up after kBlockLimit, well before the
// test stops waiting for it (kPatience): a pool that never shares shows as a
// failed assertion, never as a hang.
constexpr Duration kBlockLimit = 3s;
constexpr Duration kPatience = 8s;
constexpr int kBatch = 4;
// Timers posted together usually complete in one poll, but not always: the
// poll may wake between two of their deadlines (microseconds apart), and a
// batch split so is a single completion, which no rule shares without the
// monitor.  A case passes when one of kAttempts attempts shares; a pool
// that never shares fails them all.  A first item that gave up after
// kBlockLimit has taught the channel that items are long (a batch is then
// shared at once): the next attempt first teaches it again that they are
// short, with more rounds (each weighs a quarter in its moving average).
constexpr int kAttempts = 3;
constexpr int kTeachingRounds = 8;
constexpr int kReteachingRounds = 60;

/// One attempt's state, shared with its callbacks (they may outlive it).
struct Attempt {
  std::atomic<int> started{0};
  std::atomic<int> outcome{-1};  // the first item: 1 when it saw the batch shared, 0 when it gave up
  std::atomic<bool> laterFired{false};
  std::mutex mutex;
  std::condition_variable cv;
  int othersRun = 0;  // under mutex

  /// The first item: blocks (unannounced, unless `announce` wraps it)
  /// until another item has run, at most kBlockLimit; sets `outcome`.
  /// The others: say they ran.
  template <class Announce>
  void blockUntilAnotherRuns(Announce announce) {
    if (started.fetch_add(1) == 0) {
      const bool others = announce([this] {
        std::unique_lock<std::mutex> lock(mutex);
        return cv.wait_for(lock, generous(kBlockLimit), [this] { return othersRun > 0; });
      });
      outcome = others ? 1 : 0;
    } else {
      std::lock_guard<std::mutex> lock(mutex);
      ++othersRun;
      cv.notify_all();
    }
  }
  void blockUntilAnotherRuns() {
    blockUntilAnotherRuns([](auto wait) { return wait(); });
  }
};

/// Runs `teach` (rounds of short items) and `attempt` (which returns the
/// Attempt it started) until one shares, at most kAttempts times; whether
/// one did.
bool sharedInOneOf(const std::function<void(int rounds)>& teach,
                   const std::function<std::shared_ptr<Attempt>()>& attempt) {
  for (int i = 0; i < kAttempts; ++i) {
    teach(i == 0 ? kTeachingRounds : kReteachingRounds);
    std::shared_ptr<Attempt> state = attempt();
    CPPUNIT_ASSERT_MESSAGE("the first item did not end", eventually([&] { return state->outcome.load() != -1; }, kPatience));
    if (state->outcome.load() == 1) return true;
  }
  return false;
}

EventChannel::Options poolOptions(int threads, Duration grace) {
  EventChannel::Options options;
  options.initialThreads = threads;
  options.maxThreads = threads;
  options.stuckWorkerGrace = grace;
  return options;
}

/// Spins (never blocking) until `done()`, at most kBlockLimit; whether
/// done() came true.
template <class Done>
bool computeUntil(Done done) {
  return evchan::test::computeUntil(generous(kBlockLimit), done);
}

/// Timers posted together, so that one poll completes them together.
class TimerBatches {
 public:
  explicit TimerBatches(EventChannel& channel) : channel_(channel) {}
  void post(Duration due, const std::function<void(Event&)>& callback, int count = kBatch) {
    for (int i = 0; i < count; ++i) {
      timers_.push_back(std::make_unique<TimerEvent>(due));
      timers_.back()->setCallback(callback);
      channel_.post(*timers_.back());
    }
  }
  /// Batches of trivial items: the channel learns that its items are short,
  /// so that the next batch is not shared at once.
  void teachShortItems(int rounds = kTeachingRounds) {
    std::atomic<int> fired{0};
    for (int round = 1; round <= rounds; ++round) {
      post(1ms, [&](Event&) { ++fired; });
      CPPUNIT_ASSERT(eventually([&] { return fired.load() == round * kBatch; }, kPatience));
    }
  }

 private:
  EventChannel& channel_;
  std::vector<std::unique_ptr<TimerEvent>> timers_;
};

class PoolSharingAdversarialTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(PoolSharingAdversarialTest);
  CPPUNIT_TEST(testComputingItemSharesItsBatchWithoutMonitor);
  CPPUNIT_TEST(testTimerFiresWhileBatchItemComputesWithoutMonitor);
  CPPUNIT_TEST(testUnannouncedBlockSharesItsBatchWithoutMonitor);
  CPPUNIT_TEST(testUnannouncedBlockSharesItsBatchWithMonitor);
  CPPUNIT_TEST(testTaskSliceSharesItsBatchWithoutMonitor);
  CPPUNIT_TEST(testTaskSliceSharesItsBatchWithMonitor);
  CPPUNIT_TEST(testBlockingCallSharesItsBatch);
  CPPUNIT_TEST(testOneWorkerRunsEveryBatchItem);
  CPPUNIT_TEST(testOneWorkersBatchIsRescuedFromItsBlockedFirstItem);
  CPPUNIT_TEST(testShutdownWithBacklogPending);
  CPPUNIT_TEST(testShutdownSharesCancelledCompletionsOnIoUring);
  CPPUNIT_TEST_SUITE_END();

 public:
  // Stuck-worker monitor off (stuckWorkerGrace 0): the first item of a
  // short-looking batch computes until another item of the batch has
  // started.  Only an idle worker can start it.
  void testComputingItemSharesItsBatchWithoutMonitor() { expectComputingItemShared(0ms); }

  // Monitor off: the first of two completions computes until a timer due
  // later fires.  Nobody polls unless an idle worker is woken for the batch.
  void testTimerFiresWhileBatchItemComputesWithoutMonitor() {
    std::unique_ptr<EventChannel> channel = EventChannel::create(poolOptions(2, 0ms));
    std::vector<std::unique_ptr<TimerEvent>> laters;
    TimerBatches batches(*channel);  // before: the channel is shut down before its timers go
    ReclaimOnExit reclaim(*channel);
    const bool shared = sharedInOneOf([&](int rounds) { batches.teachShortItems(rounds); }, [&] {
      auto state = std::make_shared<Attempt>();
      laters.push_back(std::make_unique<TimerEvent>(100ms));
      laters.back()->setCallback([state](Event&) { state->laterFired = true; });
      channel->post(*laters.back());
      batches.post(10ms, [state](Event&) {
        if (state->started.fetch_add(1) == 0) {
          state->outcome = computeUntil([&] { return state->laterFired.load(); }) ? 1 : 0;
        }
      }, 2);
      return state;
    });
    CPPUNIT_ASSERT_MESSAGE("a timer waited for a batch item's computation: nobody polled", shared);
  }

  // Monitor off: the first item blocks (a std::condition_variable, not
  // announced to the pool) until another item of its batch has run.
  void testUnannouncedBlockSharesItsBatchWithoutMonitor() { expectBlockedItemShared(0ms); }

  // The same with the monitor on: its tick must hand the batch to the idle
  // worker.
  void testUnannouncedBlockSharesItsBatchWithMonitor() { expectBlockedItemShared(5ms); }

  // Tasks resumed by the same poll (their sleeps end together): the first
  // one to resume computes until another has resumed.
  void testTaskSliceSharesItsBatchWithoutMonitor() { expectTaskSliceShared(0ms); }
  void testTaskSliceSharesItsBatchWithMonitor() { expectTaskSliceShared(5ms); }

  // An item that blocks inside evchan::blocking() shares its batch, monitor
  // or not (here: off).
  void testBlockingCallSharesItsBatch() {
    std::unique_ptr<EventChannel> channel = EventChannel::create(poolOptions(2, 0ms));
    TimerBatches batches(*channel);  // before: the channel is shut down before its timers go
    ReclaimOnExit reclaim(*channel);
    const bool shared = sharedInOneOf([&](int rounds) { batches.teachShortItems(rounds); }, [&] {
      auto state = std::make_shared<Attempt>();
      batches.post(5ms, [state](Event&) {
        state->blockUntilAnotherRuns([](auto wait) { return evchan::blocking(wait); });
      });
      return state;
    });
    CPPUNIT_ASSERT_MESSAGE("the batch waited for an item in evchan::blocking()", shared);
  }

  // One worker, monitor on: nobody to share with; every item of batches
  // whose items compute runs, and a timer due meanwhile fires after them.
  void testOneWorkerRunsEveryBatchItem() {
    std::unique_ptr<EventChannel> channel = EventChannel::create(poolOptions(1, 5ms));
    TimerBatches batches(*channel);  // before: the channel is shut down before its timers go
    ReclaimOnExit reclaim(*channel);
    batches.teachShortItems();
    std::atomic<int> ran{0};
    std::atomic<bool> laterFired{false};
    TimerEvent later(20ms);
    ReclaimOnExit reclaimFirst(*channel);  // shut down before `later` goes
    later.setCallback([&](Event&) { laterFired = true; });
    channel->post(later);
    batches.post(5ms, [&](Event&) {
      const Clock::time_point until = Clock::now() + 2ms;
      while (Clock::now() < until) {
      }
      ++ran;
    }, 16);
    CPPUNIT_ASSERT_MESSAGE("ran " + std::to_string(ran.load()) + " of 16",
                           eventually([&] { return ran.load() == 16 && laterFired.load(); }, kPatience));
    CPPUNIT_ASSERT_EQUAL(1, channel->poolStats().current);
  }

  // One worker runs what its poll completed as its own batch, never
  // queued where another thread could take it: when the first item blocks
  // unannounced, the monitor must move the rest to the run queue and
  // start a spare worker for it.
  void testOneWorkersBatchIsRescuedFromItsBlockedFirstItem() {
    EventChannel::Options options = poolOptions(1, 5ms);
    options.maxThreads = 2;
    std::unique_ptr<EventChannel> channel = EventChannel::create(options);
    TimerBatches batches(*channel);
    ReclaimOnExit reclaim(*channel);
    // One attempt: a second would find the spare started for the first
    // (were it still there), no longer a worker alone.  Should the poll
    // split the batch, the spare polls for the rest and runs it: shared.
    batches.teachShortItems();
    auto state = std::make_shared<Attempt>();
    batches.post(5ms, [state](Event&) { state->blockUntilAnotherRuns(); });
    CPPUNIT_ASSERT_MESSAGE("the first item did not end", eventually([&] { return state->outcome.load() != -1; }, kPatience));
    CPPUNIT_ASSERT_MESSAGE("the only worker's batch waited for its blocked first item", state->outcome.load() == 1);
    CPPUNIT_ASSERT_EQUAL(std::uint64_t{1}, channel->poolStats().startedForPresumedStuck);
  }

  // shutdown() while a batch that looked short is still queued behind a
  // long first item: it returns, and every item's callback has run.
  void testShutdownWithBacklogPending() {
    for (Duration grace : {Duration(0ms), Duration(5ms)}) {
      std::unique_ptr<EventChannel> channel = EventChannel::create(poolOptions(2, grace));
      TimerBatches batches(*channel);
      batches.teachShortItems();
      std::atomic<int> ran{0};
      std::atomic<int> started{0};
      batches.post(5ms, [&](Event&) {
        if (started.fetch_add(1) == 0) {
          const Clock::time_point until = Clock::now() + 50ms;
          while (Clock::now() < until) {
          }
        }
        ++ran;
      }, 8);
      CPPUNIT_ASSERT(eventually([&] { return started.load() > 0; }, kPatience));
      // Nothing can release a shutdown() that hangs: the join then hangs too,
      // but only after the report below has been printed.
      const bool returned = evchan::test::finishesWithin(kPatience, [&] { channel->shutdown(); }, [] {
        std::fprintf(stderr, "shutdown() did not return within the patience\n");
      });
      CPPUNIT_ASSERT_MESSAGE("shutdown() did not return", returned);
      CPPUNIT_ASSERT_MESSAGE("ran " + std::to_string(ran.load()) + " of 8",
                             eventually([&] { return ran.load() == 8; }, kPatience));
      while (channel->getEvent(0s) != nullptr) {
      }
    }
  }

  // io_uring hands the reads that shutdown() cancels back through the
  // ring, to workers that poll after the stuck-worker monitor has been
  // stopped.  Two such completions, the first of whose callbacks waits
  // (unannounced) for the second's: only an idle worker can run the
  // second, woken for the batch when both come in one poll, or to poll
  // while the first runs when they come one poll each.  Either way every
  // shutdown shares: no attempt may fail.
  void testShutdownSharesCancelledCompletionsOnIoUring() {
    EventChannel::Options options = poolOptions(2, 5ms);
    options.backend = evchan::Backend::IoUring;
    std::error_code ec;
    std::unique_ptr<EventChannel> channel = EventChannel::create(options, ec);
    if (!channel) EVCHAN_SKIP("no io_uring: " + ec.message());
    constexpr int kShutdowns = 6;
    for (int attempt = 0; attempt < kShutdowns; ++attempt) {
      if (attempt > 0) channel = EventChannel::create(options);
      evchan::test::ConnectedPair first = evchan::test::connectPair();
      evchan::test::ConnectedPair second = evchan::test::connectPair();
      char buffers[2][8];
      evchan::ReadEvent firstRead(first.server, buffers[0], sizeof buffers[0]);
      evchan::ReadEvent secondRead(second.server, buffers[1], sizeof buffers[1]);
      TimerBatches batches(*channel);
      batches.teachShortItems(kTeachingRounds);
      auto state = std::make_shared<Attempt>();
      auto callback = [state](Event&) { state->blockUntilAnotherRuns(); };
      firstRead.setCallback(callback);
      secondRead.setCallback(callback);
      channel->post(firstRead);
      channel->post(secondRead);
      std::this_thread::sleep_for(20ms);  // both submitted to the ring (not asserted on)
      // Nothing can release a shutdown() that hangs: the join then hangs too,
      // but only after the report below has been printed.
      const bool returned = evchan::test::finishesWithin(kPatience, [&] { channel->shutdown(); }, [] {
        std::fprintf(stderr, "shutdown() did not return within the patience\n");
      });
      CPPUNIT_ASSERT_MESSAGE("shutdown() did not return", returned);
      CPPUNIT_ASSERT_EQUAL(2, state->started.load());
      CPPUNIT_ASSERT_MESSAGE("shutdown " + std::to_string(attempt + 1) +
                                 ": a cancelled read's callback waited for the other's: nobody ran it",
                             state->outcome.load() == 1);
      while (channel->getEvent(0s) != nullptr) {
      }
    }
  }

 private:
  void expectComputingItemShared(Duration grace) {
    std::unique_ptr<EventChannel> channel = EventChannel::create(poolOptions(2, grace));
    TimerBatches batches(*channel);  // before: the channel is shut down before its timers go
    ReclaimOnExit reclaim(*channel);
    const bool shared = sharedInOneOf([&](int rounds) { batches.teachShortItems(rounds); }, [&] {
      auto state = std::make_shared<Attempt>();
      batches.post(5ms, [state](Event&) {
        if (state->started.fetch_add(1) == 0) {
          state->outcome = computeUntil([&] { return state->started.load() >= 2; }) ? 1 : 0;
        }
      });
      return state;
    });
    CPPUNIT_ASSERT_MESSAGE("the batch's other items waited for its computing first one", shared);
  }

  void expectBlockedItemShared(Duration grace) {
    std::unique_ptr<EventChannel> channel = EventChannel::create(poolOptions(2, grace));
    TimerBatches batches(*channel);  // before: the channel is shut down before its timers go
    ReclaimOnExit reclaim(*channel);
    const bool shared = sharedInOneOf([&](int rounds) { batches.teachShortItems(rounds); }, [&] {
      auto state = std::make_shared<Attempt>();
      batches.post(5ms, [state](Event&) { state->blockUntilAnotherRuns(); });
      return state;
    });
    CPPUNIT_ASSERT_MESSAGE("the batch waited for its blocked first item", shared);
  }

  void expectTaskSliceShared(Duration grace) {
    std::unique_ptr<EventChannel> channel = EventChannel::create(poolOptions(2, grace));
    ReclaimOnExit reclaim(*channel);
    // Rounds of tasks whose sleeps end together and that do nothing after.
    auto teach = [&](int rounds) {
      for (int round = 1; round <= rounds; ++round) {
        std::vector<TaskHandle> shortTasks;
        for (int i = 0; i < kBatch; ++i) shortTasks.push_back(channel->spawn([] { evchan::this_task::sleepFor(2ms); }));
        for (TaskHandle& task : shortTasks) evchan::test::joinWithin(task, kPatience);
      }
    };
    std::vector<TaskHandle> tasks;
    const bool shared = sharedInOneOf(teach, [&] {
      auto state = std::make_shared<Attempt>();
      for (int i = 0; i < kBatch; ++i) {
        tasks.push_back(channel->spawn([state] {
          evchan::this_task::sleepFor(5ms);
          if (state->started.fetch_add(1) == 0) {
            state->outcome = computeUntil([&] { return state->started.load() >= 2; }) ? 1 : 0;
          }
        }));
      }
      return state;
    });
    for (TaskHandle& task : tasks) evchan::test::joinWithin(task, kPatience);
    CPPUNIT_ASSERT_MESSAGE("tasks resumed together waited for the first one's slice", shared);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(PoolSharingAdversarialTest);

}  // namespace
