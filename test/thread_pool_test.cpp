// SPDX-License-Identifier: Apache-2.0
// Tests of EventChannel's thread pool (backend Default): its statistics,
// growth when workers block (the deadlock of the issue), the cap,
// shrinking after the idle timeout, options and backend selection.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/diagnostics.h"
#include "support/environment.h"
#include "support/computing.h"
#include "support/leak_checked_fixture.h"
#include "support/skip.h"
#include "support/waiting.h"
#include "support/reclaim_on_exit.h"

namespace {

using namespace std::chrono_literals;
using evchan::Backend;
using evchan::DispatchEvent;
using evchan::Duration;
using evchan::Event;
using evchan::EventChannel;
using evchan::NotifyEvent;
using evchan::ThreadPoolStats;
using evchan::TimerEvent;
using Clock = std::chrono::steady_clock;
using evchan::test::generous;
using evchan::test::ReclaimOnExit;

// Bounded waits everywhere.  A blocked dispatch gives up after kBlockLimit,
// well before the test stops waiting for it (kPatience), so a pool that
// deadlocks shows as "released 0 of N", never as a hang.
constexpr Duration kBlockLimit = 3s;
constexpr Duration kPatience = 8s;
using evchan::test::eventually;

EventChannel::Options poolOptions(int initial, int max = 0, Duration idleTimeout = 10s) {
  EventChannel::Options options;
  options.initialThreads = initial;
  options.maxThreads = max;
  options.idleTimeout = idleTimeout;
  return options;
}

std::string describe(const ThreadPoolStats& s) {
  return "current " + std::to_string(s.current) + ", peak " + std::to_string(s.peak) + ", idle " +
         std::to_string(s.idle) + ", blocked " + std::to_string(s.blocked) + ", initial " +
         std::to_string(s.initial) + ", max " + std::to_string(s.maxThreads) + ", started " +
         std::to_string(s.started) + ", exited " + std::to_string(s.exited);
}

/// Dispatches whose functions block on `release` (at most kBlockLimit) and
/// count how many were started and how many were released.
struct Blockers {
  NotifyEvent release;
  std::atomic<int> started{0};
  std::atomic<int> released{0};
  std::vector<std::unique_ptr<DispatchEvent>> events;

  explicit Blockers(int count) {
    for (int i = 0; i < count; ++i) {
      events.push_back(std::make_unique<DispatchEvent>([this] {
        ++started;
        if (release.wait(kBlockLimit)) ++released;
      }));
    }
  }
  void postAll(EventChannel& channel) {
    for (auto& event : events) channel.post(*event);
  }
};

/// Computes (spins, never blocking) until `done()`, at most kBlockLimit;
/// whether done() came true.
template <class Done>
bool computeUntil(Done done) {
  return evchan::test::computeUntil(kBlockLimit, done);
}

/// Takes `count` events from getEvent(), each within kPatience.
int collect(EventChannel& channel, int count) {
  int got = 0;
  while (got < count && channel.getEvent(kPatience) != nullptr) ++got;
  return got;
}

/// Sets an environment variable for a scope and restores the old value.
class ScopedEnvironment {
 public:
  ScopedEnvironment(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, hadOld_ = true;
    evchan::test::setEnvironment(name, value);
  }
  ~ScopedEnvironment() {
    if (hadOld_) evchan::test::setEnvironment(name_.c_str(), old_.c_str());
    else evchan::test::unsetEnvironment(name_.c_str());
  }

 private:
  std::string name_, old_;
  bool hadOld_ = false;
};

std::error_code creationError(const EventChannel::Options& options) {
  std::error_code ec;
  std::unique_ptr<EventChannel> channel = EventChannel::create(options, ec);
  CPPUNIT_ASSERT_MESSAGE("a channel came with an error", !channel || !ec);
  return channel ? std::error_code() : ec;
}


}  // namespace

class ThreadPoolTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(ThreadPoolTest);
  CPPUNIT_TEST(testStatsOfANewChannel);
  CPPUNIT_TEST(testDefaultSizeIsCpuParallelism);
  CPPUNIT_TEST(testBlockedWorkersDoNotDeadlockThePool);
  CPPUNIT_TEST(testWorkerBlockedInGetEventIsCompensated);
  CPPUNIT_TEST(testBlockingWorkerSharesItsLocalCompletions);
  CPPUNIT_TEST(testIdleWorkerPollsWhileAnotherComputes);
  CPPUNIT_TEST(testBatchWhoseItemRunsLongIsShared);
  CPPUNIT_TEST(testFullPollsDoNotStarveQueuedWork);
  CPPUNIT_TEST(testPoolNeverExceedsMaxThreads);
  CPPUNIT_TEST(testIdleThreadsExitAfterIdleTimeout);
  CPPUNIT_TEST(testShutdownReleasesBlockedWorker);
  CPPUNIT_TEST(testShutdownReleasesWorkerThatBlocksLate);
  CPPUNIT_TEST(testInvalidOptions);
  CPPUNIT_TEST(testOptionsAboveTheirMaximumAreRefused);
  CPPUNIT_TEST(testBackendFromName);
  CPPUNIT_TEST(testBackendFromEnvironment);
  CPPUNIT_TEST(testIoUringFromEnvironment);
  CPPUNIT_TEST(testIocpIsTheWindowsDefault);
  CPPUNIT_TEST(testUnknownBackendInEnvironment);
  CPPUNIT_TEST(testHugeInitialThreadsDefaultMaximumSaturates);
  CPPUNIT_TEST(testExplicitBackendIsStrict);
  CPPUNIT_TEST_SUITE_END();

 public:
  void testStatsOfANewChannel() {
    std::unique_ptr<EventChannel> channel = EventChannel::create(poolOptions(3));
    const ThreadPoolStats s = channel->poolStats();
    CPPUNIT_ASSERT_MESSAGE(describe(s), s.current == 3 && s.initial == 3 && s.peak == 3);
    CPPUNIT_ASSERT_MESSAGE(describe(s), s.started == 3 && s.exited == 0 && s.blocked == 0);
    CPPUNIT_ASSERT_MESSAGE(describe(s), s.startedInitial == 3 && s.startedForBlockingCalls == 0 &&
                                            s.startedForPresumedStuck == 0 && s.startedForGrowth == 0 &&
                                            s.runnablePastGrace == 0);
    CPPUNIT_ASSERT(s.cpuParallelism >= 1);
    CPPUNIT_ASSERT_EQUAL(64, s.maxThreads);  // max(64, 16 x initial)
    // Once settled, every worker waits for work (one of them in the poller).
    CPPUNIT_ASSERT_MESSAGE(describe(channel->poolStats()), eventually([&] { return channel->poolStats().idle == 3; }));
  }

  void testDefaultSizeIsCpuParallelism() {
    std::unique_ptr<EventChannel> channel = EventChannel::create();
    const ThreadPoolStats s = channel->poolStats();
    CPPUNIT_ASSERT(s.cpuParallelism >= 1);
    CPPUNIT_ASSERT_EQUAL(s.cpuParallelism, s.initial);
    CPPUNIT_ASSERT_EQUAL(s.initial, s.current);
    CPPUNIT_ASSERT(s.maxThreads >= s.initial && s.maxThreads >= 64);
  }

  // The issue: with N workers, N dispatches block on a NotifyEvent that
  // only a later dispatch posts.  The pool must start a thread for it.
  void testBlockedWorkersDoNotDeadlockThePool() {
    constexpr int N = 2;
    std::unique_ptr<EventChannel> channel = EventChannel::create(poolOptions(N));
    Blockers blockers(N);
    DispatchEvent releaser([&] { channel->post(blockers.release); });
    ReclaimOnExit reclaim(*channel);
    blockers.postAll(*channel);
    channel->post(releaser);
    CPPUNIT_ASSERT_EQUAL(N + 1, collect(*channel, N + 1));
    CPPUNIT_ASSERT_EQUAL_MESSAGE("blocked dispatches released", N, blockers.released.load());
    CPPUNIT_ASSERT_MESSAGE(describe(channel->poolStats()), channel->poolStats().peak > N);
  }

  // getEvent() on a worker blocks it too: with the only worker waiting
  // there for a timer, someone else must poll for the timer.
  void testWorkerBlockedInGetEventIsCompensated() {
    std::unique_ptr<EventChannel> channel = EventChannel::create(poolOptions(1));
    TimerEvent timer(50ms);
    Event* got = nullptr;
    NotifyEvent done;
    DispatchEvent waiter([&] {
      channel->post(timer);
      got = channel->getEvent(kBlockLimit);
    });
    // A callback keeps the dispatch itself away from getEvent(), and this
    // thread out of it, so the worker is the only taker of the timer.
    waiter.setCallback([&](Event&) { channel->post(done); });
    ReclaimOnExit reclaim(*channel);
    channel->post(waiter);
    CPPUNIT_ASSERT(done.wait(kPatience));
    CPPUNIT_ASSERT_MESSAGE("the worker's getEvent() did not get the timer", got == &timer);
    CPPUNIT_ASSERT_MESSAGE(describe(channel->poolStats()), channel->poolStats().peak >= 2);
    CPPUNIT_ASSERT_MESSAGE(describe(channel->poolStats()), channel->poolStats().startedForBlockingCalls >= 1);
  }

  // A worker computing in the callback of its poll's only completion
  // leaves nobody polling: an idle worker must take over, or timers and
  // sockets wait until the computation ends.  (The computing worker gets
  // no spare thread, being runnable: pool_policy_test.)
  void testIdleWorkerPollsWhileAnotherComputes() {
    std::unique_ptr<EventChannel> channel = EventChannel::create(poolOptions(2));
    std::atomic<bool> laterFired{false};
    std::atomic<int> outcome{-1};
    TimerEvent later(100ms);
    later.setCallback([&](Event&) { laterFired = true; });
    TimerEvent first(10ms);
    first.setCallback([&](Event&) { outcome = computeUntil([&] { return laterFired.load(); }) ? 1 : 0; });
    ReclaimOnExit reclaim(*channel);
    channel->post(later);
    channel->post(first);
    CPPUNIT_ASSERT(eventually([&] { return outcome.load() != -1; }, kPatience));
    CPPUNIT_ASSERT_MESSAGE("the later timer waited for the computation to end", outcome.load() == 1);
  }

  // A poll's completions stay with the worker that polled while they look
  // short (waking another worker would cost more than running them); one
  // that turns out long still gets them shared: another worker starts the
  // batch's next item while its first one runs.
  void testBatchWhoseItemRunsLongIsShared() {
    constexpr int kBatch = 4;
    std::unique_ptr<EventChannel> channel = EventChannel::create(poolOptions(2));
    std::vector<std::unique_ptr<TimerEvent>> timers;
    std::atomic<int> fired{0};
    std::atomic<int> started{0};
    std::atomic<int> outcome{-1};
    ReclaimOnExit reclaim(*channel);
    auto postBatch = [&](Duration due, const std::function<void(Event&)>& callback) {
      for (int i = 0; i < kBatch; ++i) {
        timers.push_back(std::make_unique<TimerEvent>(due));
        timers.back()->setCallback(callback);
        channel->post(*timers.back());
      }
    };
    // Batches of short items first: the channel learns what its items cost.
    for (int round = 1; round <= 8; ++round) {
      postBatch(1ms, [&](Event&) { ++fired; });
      CPPUNIT_ASSERT(eventually([&] { return fired.load() == round * kBatch; }, kPatience));
    }
    postBatch(5ms, [&](Event&) {
      if (started.fetch_add(1) == 0) outcome = computeUntil([&] { return started.load() >= 2; }) ? 1 : 0;
    });
    CPPUNIT_ASSERT(eventually([&] { return outcome.load() != -1; }, kPatience));
    CPPUNIT_ASSERT_MESSAGE("the batch's other items waited for its first one", outcome.load() == 1);
  }

  // Polls that keep finding a full batch must not keep the run queue
  // waiting: 200 timers that post themselves again (each poll finds them
  // due) and, once they run, a dispatch posted from this thread.
  void testFullPollsDoNotStarveQueuedWork() {
    constexpr int kTimers = 200;
    std::unique_ptr<EventChannel> channel = EventChannel::create(poolOptions(1));
    std::atomic<bool> stop{false};
    std::atomic<long> fired{0};
    std::atomic<int> running{kTimers};
    std::vector<std::unique_ptr<TimerEvent>> timers;
    for (int i = 0; i < kTimers; ++i) {
      timers.push_back(std::make_unique<TimerEvent>(1us));
      TimerEvent& timer = *timers.back();
      timer.setCallback([&](Event&) {
        ++fired;
        if (stop.load()) {
          --running;
        } else {
          channel->post(timer);
        }
      });
    }
    ReclaimOnExit reclaim(*channel);
    for (auto& timer : timers) channel->post(*timer);
    CPPUNIT_ASSERT(eventually([&] { return fired.load() >= 10 * kTimers; }, kPatience));
    std::atomic<bool> dispatched{false};
    DispatchEvent probe([] {});
    probe.setCallback([&](Event&) { dispatched = true; });
    channel->post(probe);
    const bool ran = eventually([&] { return dispatched.load(); }, kPatience);
    const long firedMeanwhile = fired.load();
    stop = true;
    CPPUNIT_ASSERT(eventually([&] { return running.load() == 0; }, kPatience));
    CPPUNIT_ASSERT_MESSAGE("the dispatch waited while the timers fired " + std::to_string(firedMeanwhile) + " times",
                           ran);
  }

  // What a callback completes on its own worker waits in that worker's
  // local batch; if the callback then blocks on it, it must be shared.
  void testBlockingWorkerSharesItsLocalCompletions() {
    std::unique_ptr<EventChannel> channel = EventChannel::create(poolOptions(1));
    NotifyEvent released;
    TimerEvent timer(Duration::zero());  // completes inside post()
    timer.setCallback([&](Event&) { channel->post(released); });
    bool wasReleased = false;
    NotifyEvent done;
    DispatchEvent waiter([&] {
      channel->post(timer);
      wasReleased = released.wait(kBlockLimit);
    });
    waiter.setCallback([&](Event&) { channel->post(done); });
    ReclaimOnExit reclaim(*channel);
    channel->post(waiter);
    CPPUNIT_ASSERT(done.wait(kPatience));
    CPPUNIT_ASSERT_MESSAGE("the timer stayed in the blocked worker's local batch", wasReleased);
  }

  void testPoolNeverExceedsMaxThreads() {
    std::unique_ptr<EventChannel> channel = EventChannel::create(poolOptions(1, 3));
    Blockers blockers(5);
    ReclaimOnExit reclaim(*channel);
    blockers.postAll(*channel);
    // Three workers block; at the cap the other two dispatches must wait.
    CPPUNIT_ASSERT_MESSAGE(describe(channel->poolStats()), eventually([&] { return channel->poolStats().blocked == 3; }));
    std::this_thread::sleep_for(100ms);  // room for an over-eager pool to start a fourth thread
    const ThreadPoolStats s = channel->poolStats();
    CPPUNIT_ASSERT_MESSAGE(describe(s), s.current == 3 && s.peak == 3);
    CPPUNIT_ASSERT_EQUAL(3, blockers.started.load());
    channel->post(blockers.release);  // from outside the pool
    CPPUNIT_ASSERT_EQUAL(5, collect(*channel, 5));
    CPPUNIT_ASSERT_EQUAL(5, blockers.released.load());
    CPPUNIT_ASSERT_MESSAGE(describe(channel->poolStats()), channel->poolStats().peak <= 3);
  }

  void testIdleThreadsExitAfterIdleTimeout() {
    std::unique_ptr<EventChannel> channel = EventChannel::create(poolOptions(1, 0, 200ms));
    Blockers blockers(3);
    ReclaimOnExit reclaim(*channel);
    blockers.postAll(*channel);
    CPPUNIT_ASSERT_MESSAGE(describe(channel->poolStats()), eventually([&] { return channel->poolStats().blocked == 3; }));
    // Three blocked, and still one free to poll and run work.
    CPPUNIT_ASSERT_MESSAGE(describe(channel->poolStats()), channel->poolStats().current >= 4);
    channel->post(blockers.release);
    CPPUNIT_ASSERT_EQUAL(3, collect(*channel, 3));
    CPPUNIT_ASSERT_MESSAGE(describe(channel->poolStats()), eventually([&] { return channel->poolStats().current == 1; }, 5s));
    const ThreadPoolStats s = channel->poolStats();
    CPPUNIT_ASSERT_MESSAGE(describe(s), s.exited >= 3 && s.started == s.exited + 1);
  }

  // shutdown() releases a worker blocked in NotifyEvent::wait, so that it
  // can join the pool promptly.
  void testShutdownReleasesBlockedWorker() {
    std::unique_ptr<EventChannel> channel = EventChannel::create(poolOptions(2));
    NotifyEvent never;
    std::atomic<int> waitResult{-1};
    DispatchEvent blocked([&] { waitResult = never.wait(kBlockLimit) ? 1 : 0; });
    ReclaimOnExit reclaim(*channel);
    channel->post(blocked);
    CPPUNIT_ASSERT(eventually([&] { return channel->poolStats().blocked == 1; }));
    assertShutdownIsPrompt(*channel);
    CPPUNIT_ASSERT_EQUAL_MESSAGE("wait() result of the released worker", 0, waitResult.load());
  }

  // The same for a worker that starts waiting only after shutdown() has
  // begun (e.g. a cancelled event's callback that waits for something).
  void testShutdownReleasesWorkerThatBlocksLate() {
    std::unique_ptr<EventChannel> channel = EventChannel::create(poolOptions(2));
    NotifyEvent running, never;
    std::atomic<int> waitResult{-1};
    DispatchEvent late([&] {
      channel->post(running);
      const Clock::time_point deadline = Clock::now() + kBlockLimit;
      while (!channel->isShutDown() && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
      std::this_thread::sleep_for(50ms);  // well after shutdown() released the waiters it knew
      waitResult = never.wait(kBlockLimit) ? 1 : 0;
    });
    ReclaimOnExit reclaim(*channel);
    channel->post(late);
    CPPUNIT_ASSERT(running.wait(kPatience));
    assertShutdownIsPrompt(*channel);
    CPPUNIT_ASSERT_EQUAL_MESSAGE("wait() result of the released worker", 0, waitResult.load());
  }

  void testInvalidOptions() {
    for (const EventChannel::Options& options :
         {poolOptions(-1), poolOptions(1, -1), poolOptions(5, 2), poolOptions(1, 0, -1ms)}) {
      const std::error_code ec = creationError(options);
      CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == std::errc::invalid_argument);
    }
    try {
      EventChannel::create(poolOptions(5, 2));
      CPPUNIT_FAIL("create() with initialThreads above maxThreads did not throw");
    } catch (const evchan::SystemError& e) {
      CPPUNIT_ASSERT(e.code() == std::errc::invalid_argument);
    }
  }

  // Sizes no pool or stack can have are refused at create(), each named
  // with its limit, instead of a channel whose every spawn fails.
  void testOptionsAboveTheirMaximumAreRefused() {
    EventChannel::Options hugeStack;
    hugeStack.taskStackSize = SIZE_MAX;
    EventChannel::Options stackJustAbove;
    stackJustAbove.taskStackSize = evchan::kMaxTaskStackSize + 1;
    const std::pair<EventChannel::Options, std::string> cases[] = {
        {poolOptions(100000), "initialThreads"},
        {poolOptions(evchan::kMaxWorkerThreads + 1), "initialThreads"},
        {poolOptions(1, evchan::kMaxWorkerThreads + 1), "maxThreads"},
        {poolOptions(1, INT_MAX), "maxThreads"},
        {hugeStack, "taskStackSize"},
        {stackJustAbove, "taskStackSize"},
    };
    for (const auto& [options, name] : cases) {
      const std::error_code ec = creationError(options);
      CPPUNIT_ASSERT_MESSAGE(name + ": " + ec.message(), ec == std::errc::invalid_argument);
      try {
        EventChannel::create(options);
        CPPUNIT_FAIL("create() with " + name + " above its maximum did not throw");
      } catch (const evchan::SystemError& e) {
        const std::string what = e.what();
        CPPUNIT_ASSERT(e.code() == std::errc::invalid_argument);
        CPPUNIT_ASSERT_MESSAGE(what, what.find(name) != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(what, what.find(name == "taskStackSize" ? "1 GiB" : "16384") != std::string::npos);
      }
    }
    // The largest values are accepted (the stack is only address space).
    EventChannel::Options largest = poolOptions(1, evchan::kMaxWorkerThreads);
    largest.taskStackSize = evchan::kMaxTaskStackSize;
    std::error_code ec;
    std::unique_ptr<EventChannel> channel = EventChannel::create(largest, ec);
    CPPUNIT_ASSERT_MESSAGE(ec.message(), channel != nullptr);
    CPPUNIT_ASSERT_EQUAL(evchan::kMaxWorkerThreads, channel->poolStats().maxThreads);
    // A stack above the maximum is refused by spawn() as well.
    evchan::TaskOptions taskOptions;
    taskOptions.stackSize = SIZE_MAX;
    evchan::TaskHandle task = channel->spawn([] {}, taskOptions, ec);
    CPPUNIT_ASSERT(!task.valid());
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == std::errc::invalid_argument);
    // The throwing form says what was wrong: the stack size with its
    // limit, or an empty function.
    try {
      channel->spawn([] {}, taskOptions);
      CPPUNIT_FAIL("spawn() with a stack above kMaxTaskStackSize did not throw");
    } catch (const evchan::SystemError& e) {
      const std::string what = e.what();
      CPPUNIT_ASSERT(e.code() == std::errc::invalid_argument);
      CPPUNIT_ASSERT_MESSAGE(what, what.find("stackSize") != std::string::npos && what.find("1 GiB") != std::string::npos);
    }
    try {
      channel->spawn(std::function<void()>());
      CPPUNIT_FAIL("spawn() of an empty function did not throw");
    } catch (const evchan::SystemError& e) {
      const std::string what = e.what();
      CPPUNIT_ASSERT(e.code() == std::errc::invalid_argument);
      CPPUNIT_ASSERT_MESSAGE(what, what.find("empty") != std::string::npos);
    }
  }

  // Every backend's name maps back to it; other names leave the value alone.
  void testBackendFromName() {
    for (Backend backend : {Backend::Default, Backend::Epoll, Backend::Poll, Backend::Select, Backend::AprPollset,
                            Backend::IoUring, Backend::Aio, Backend::Iocp}) {
      Backend parsed = backend == Backend::Epoll ? Backend::Poll : Backend::Epoll;
      CPPUNIT_ASSERT(evchan::backendFromName(evchan::backendName(backend), parsed));
      CPPUNIT_ASSERT(parsed == backend);
    }
    Backend untouched = Backend::Select;
    for (const char* name : {"kqueue", "", "EPOLL", "epoll "}) {
      CPPUNIT_ASSERT_MESSAGE(name, !evchan::backendFromName(name, untouched));
      CPPUNIT_ASSERT(untouched == Backend::Select);
    }
  }

  void testBackendFromEnvironment() {
    // apr_pollset: compiled in every build, and never the Linux default.
    {
      ScopedEnvironment environment("EVCHAN_BACKEND", "apr_pollset");
      std::unique_ptr<EventChannel> channel = EventChannel::create();
      CPPUNIT_ASSERT_EQUAL(std::string("apr_pollset"), std::string(channel->backendName()));
    }
    // The variable only steers Default; an explicit request does not read
    // it at all, so even a name no build knows does not matter there.
    ScopedEnvironment environment("EVCHAN_BACKEND", "kqueue");
    EventChannel::Options explicitly;
    explicitly.backend = Backend::AprPollset;
    CPPUNIT_ASSERT_EQUAL(std::string("apr_pollset"), std::string(EventChannel::create(explicitly)->backendName()));
  }

  // EVCHAN_BACKEND=io_uring is strict too: io_uring, or the reason there is none.
  void testIoUringFromEnvironment() {
    ScopedEnvironment environment("EVCHAN_BACKEND", "io_uring");
    std::error_code ec;
    std::unique_ptr<EventChannel> channel = EventChannel::create(EventChannel::Options(), ec);
    if (!channel) {
      CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == std::errc::function_not_supported ||
                                               ec == std::errc::operation_not_permitted ||
                                               ec == std::errc::permission_denied);
      EVCHAN_SKIP("io_uring not available: " + ec.message());
    }
    CPPUNIT_ASSERT_EQUAL(std::string("io_uring"), std::string(channel->backendName()));
  }

  // I/O completion ports are Windows' default backend, and exist on no
  // other host (an explicit request there fails as not compiled in).
  void testIocpIsTheWindowsDefault() {
    ScopedEnvironment environment("EVCHAN_BACKEND", "");
    const std::string chosen = EventChannel::create()->backendName();
    EventChannel::Options iocp;
    iocp.backend = Backend::Iocp;
    std::error_code ec;
    std::unique_ptr<EventChannel> explicitly = EventChannel::create(iocp, ec);
#ifdef _WIN32
    CPPUNIT_ASSERT_EQUAL(std::string("iocp"), chosen);
    CPPUNIT_ASSERT_MESSAGE(ec.message(), explicitly != nullptr);
#else
    CPPUNIT_ASSERT(chosen != "iocp");
    CPPUNIT_ASSERT(explicitly == nullptr);
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == std::errc::function_not_supported);
#endif
  }

  // Refused, and the message names the variable, its value and the
  // names it takes (not "backend default", which the caller asked for).
  void testUnknownBackendInEnvironment() {
    ScopedEnvironment environment("EVCHAN_BACKEND", "kqueue");
    const std::error_code ec = creationError(EventChannel::Options());
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == std::errc::invalid_argument);
    try {
      EventChannel::create();
      CPPUNIT_FAIL("create() with EVCHAN_BACKEND=kqueue did not throw");
    } catch (const evchan::SystemError& e) {
      const std::string what = e.what();
      CPPUNIT_ASSERT(e.code() == std::errc::invalid_argument);
      CPPUNIT_ASSERT_MESSAGE(what, what.find("EVCHAN_BACKEND=\"kqueue\"") != std::string::npos);
      CPPUNIT_ASSERT_MESSAGE(what, what.find("apr_pollset") != std::string::npos);
    }
  }

  // The default maximum, 16 times initialThreads, saturates instead of
  // overflowing for a huge initialThreads.  The unknown backend in the
  // environment fails the creation before any thread starts.
  void testHugeInitialThreadsDefaultMaximumSaturates() {
    ScopedEnvironment environment("EVCHAN_BACKEND", "kqueue");
    for (int initial : {INT_MAX / 16 + 1, INT_MAX}) {
      const std::error_code ec = creationError(poolOptions(initial));
      CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == std::errc::invalid_argument);
    }
  }

  // An explicit backend either is what the channel uses or fails with
  // function_not_supported; it never falls back to another one.
  void testExplicitBackendIsStrict() {
    int available = 0;
    for (Backend backend :
         {Backend::Epoll, Backend::Poll, Backend::Select, Backend::AprPollset, Backend::IoUring, Backend::Iocp}) {
      EventChannel::Options options;
      options.backend = backend;
      std::error_code ec;
      std::unique_ptr<EventChannel> channel = EventChannel::create(options, ec);
      if (!channel) {
        // io_uring reports the kernel's refusal as it is (EPERM: seccomp or
        // kernel.io_uring_disabled).
        CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == std::errc::function_not_supported ||
                                                 (backend == Backend::IoUring &&
                                                  (ec == std::errc::operation_not_permitted ||
                                                   ec == std::errc::permission_denied)));
        continue;
      }
      ++available;
      CPPUNIT_ASSERT_EQUAL(std::string(evchan::backendName(backend)), std::string(channel->backendName()));
    }
    CPPUNIT_ASSERT(available >= 1);
    EventChannel::Options bogus;
    bogus.backend = static_cast<Backend>(99);
    const std::error_code ec = creationError(bogus);
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == std::errc::function_not_supported);
  }

 private:
  static void assertShutdownIsPrompt(EventChannel& channel) {
    const Clock::time_point start = Clock::now();
    channel.shutdown();
    const Clock::duration took = Clock::now() - start;
    CPPUNIT_ASSERT_MESSAGE("shutdown() took " + evchan::test::elapsedText(took), took < evchan::test::generous(1s));
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(ThreadPoolTest);
