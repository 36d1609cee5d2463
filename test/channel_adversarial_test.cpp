// SPDX-License-Identifier: Apache-2.0
// EventChannel and File attacked through the public API: one event posted
// from two threads at once; events re-posted from their own callbacks on
// every backend; cancel() from several threads racing a timer's expiry
// (exactly one completion, cancel()'s answer matching the result); timer
// delays and wait timeouts at both ends of the Duration range; a channel
// destroyed while its callbacks run and its timers wait; pool statistics
// sampled under load; file reads and writes of zero bytes and at offsets
// beyond off_t.  EVCHAN_CHANNEL_ADVERSARIAL_ROUNDS multiplies the rounds.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/race_scheduling.h"
#include "support/slowdown.h"
#include "support/temp_path.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::Backend;
using evchan::DispatchEvent;
using evchan::Duration;
using evchan::Errc;
using evchan::Event;
using evchan::EventChannel;
using evchan::File;
using evchan::FileReadEvent;
using evchan::FileWriteEvent;
using evchan::NotifyEvent;
using evchan::ThreadPoolStats;
using evchan::TimerEvent;
using evchan::test::describe;
using evchan::test::eventually;
using evchan::test::generous;
using evchan::test::stagger;
using evchan::test::TempPath;

int rounds(double plain) { return evchan::test::raceRounds(plain, "EVCHAN_CHANNEL_ADVERSARIAL_ROUNDS"); }

// What the channels of a case are for: file events leave out the backends
// where they cannot be tested in this build (fileEventsUntestable()).
enum class Work { sockets, files };

// A channel with `threads` workers on each backend this host has.
std::vector<std::unique_ptr<EventChannel>> channelOnEveryBackend(int threads, Work work = Work::sockets) {
  std::vector<std::unique_ptr<EventChannel>> channels;
  for (Backend backend : {Backend::Epoll, Backend::Poll, Backend::Select, Backend::AprPollset, Backend::IoUring,
                          Backend::Aio, Backend::Iocp}) {
    if (work == Work::files && evchan::test::fileEventsUntestable(backend) != nullptr) continue;
    EventChannel::Options options;
    options.backend = backend;
    options.initialThreads = threads;
    std::error_code ec;
    std::unique_ptr<EventChannel> channel = EventChannel::create(options, ec);
    if (channel) channels.push_back(std::move(channel));
  }
  CPPUNIT_ASSERT(!channels.empty());
  return channels;
}

// Two threads released together.
class StartLine {
 public:
  explicit StartLine(int runners) : waiting_(runners) {}
  void arrive() {
    waiting_.fetch_sub(1);
    while (waiting_.load() > 0) {
    }
  }

 private:
  std::atomic<int> waiting_;
};

}  // namespace

class ChannelAdversarialTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(ChannelAdversarialTest);
  CPPUNIT_TEST(testOneEventPostedFromTwoThreads);
  CPPUNIT_TEST(testRepostFromOwnCallbackOnEveryBackend);
  CPPUNIT_TEST(testCancelsRacingTimerExpiry);
  CPPUNIT_TEST(testExtremeTimerDelays);
  CPPUNIT_TEST(testExtremeWaitTimeouts);
  CPPUNIT_TEST(testDestroyWhileCallbacksRunAndTimersWait);
  CPPUNIT_TEST(testPoolStatsStayConsistent);
  CPPUNIT_TEST(testFileZeroSizesAndOffsetsBeyondOffT);
  CPPUNIT_TEST(testZeroSizeFileEventsOnEveryBackend);
  CPPUNIT_TEST(testReadsReachingTheEndOfOffTFindTheEnd);
  CPPUNIT_TEST(testEventSeesItselfInFlightWhileItRuns);
  CPPUNIT_TEST(testEventsDestroyedInTheirOwnCallbacks);
  CPPUNIT_TEST(testNotifyPostedFromManyThreads);
  CPPUNIT_TEST(testCancelStormOverManyTimers);
  CPPUNIT_TEST(testOneEventPostedToTwoChannelsAtOnce);
  CPPUNIT_TEST(testShutdownReleasesOnlyItsOwnWorkersFromNotifyWait);
  CPPUNIT_TEST(testNotifyWithoutCallbackIsNeverQueued);
  CPPUNIT_TEST(testPoolStatsAfterShutdownWithoutIdleTimeout);
  CPPUNIT_TEST(testWritesAcrossTheEndOfOffTFailOnEveryBackend);
  CPPUNIT_TEST(testCancelsRacingDestruction);
  CPPUNIT_TEST(testCancelsRacingRepostsFromTheCallback);
  CPPUNIT_TEST(testDispatchWithoutAFunction);
  CPPUNIT_TEST(testDestroyReleasesWorkersInNotifyWait);
  CPPUNIT_TEST_SUITE_END();

 public:
  // Two threads post the same timer at once: exactly one post() succeeds,
  // the other is already_in_flight, and the timer completes once.  The
  // same for a DispatchEvent, which may legitimately complete between the
  // two posts: every successful post() is matched by one completion.
  void testOneEventPostedFromTwoThreads() {
    for (std::unique_ptr<EventChannel>& channel : channelOnEveryBackend(2)) {
      const std::string backend = channel->backendName();
      const int n = rounds(60);
      for (int round = 0; round < n; ++round) {
        std::atomic<int> completions{0};
        TimerEvent timer(1h);
        timer.setCallback([&](Event&) { completions.fetch_add(1); });
        std::error_code results[2];
        StartLine line(2);
        std::thread other([&] {
          line.arrive();
          stagger(round % 5);
          channel->post(timer, results[1]);
        });
        line.arrive();
        stagger((round / 5) % 5);
        channel->post(timer, results[0]);
        other.join();
        const int accepted = (!results[0] ? 1 : 0) + (!results[1] ? 1 : 0);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(backend + ": posts accepted", 1, accepted);
        const std::error_code& refused = results[0] ? results[0] : results[1];
        CPPUNIT_ASSERT_MESSAGE(backend + ": " + describe(refused), refused == Errc::already_in_flight);
        CPPUNIT_ASSERT(channel->cancel(timer));
        CPPUNIT_ASSERT(eventually([&] { return completions.load() == 1 && !timer.inFlight(); }));
        CPPUNIT_ASSERT_MESSAGE(describe(timer.error()), timer.error() == std::errc::operation_canceled);
        CPPUNIT_ASSERT(!channel->cancel(timer));
      }
      for (int round = 0; round < n; ++round) {
        std::atomic<int> completions{0}, accepted{0};
        DispatchEvent dispatch([] {});
        dispatch.setCallback([&](Event&) { completions.fetch_add(1); });
        std::atomic<bool> wrongError{false};
        auto poster = [&] {
          std::error_code ec;
          channel->post(dispatch, ec);
          if (!ec) accepted.fetch_add(1);
          else if (ec != Errc::already_in_flight) wrongError = true;
        };
        StartLine line(2);
        std::thread other([&] {
          line.arrive();
          poster();
        });
        line.arrive();
        stagger(round % 3);
        poster();
        other.join();
        CPPUNIT_ASSERT(!wrongError.load());
        CPPUNIT_ASSERT(accepted.load() >= 1);
        CPPUNIT_ASSERT_MESSAGE(backend, eventually([&] { return completions.load() == accepted.load(); }));
        CPPUNIT_ASSERT(eventually([&] { return !dispatch.inFlight(); }));
        CPPUNIT_ASSERT_EQUAL(accepted.load(), completions.load());
      }
    }
  }

  // A zero timer, a DispatchEvent and a NotifyEvent each re-post
  // themselves from their own callback; each also posts the next kind.
  // Every post is accepted and every one completes exactly once.
  void testRepostFromOwnCallbackOnEveryBackend() {
    constexpr int kTimes = 200;
    for (std::unique_ptr<EventChannel>& channel : channelOnEveryBackend(2)) {
      const std::string backend = channel->backendName();
      TimerEvent timer(0ns);
      DispatchEvent dispatch([] {});
      NotifyEvent notify;
      std::atomic<int> timerRuns{0}, dispatchRuns{0}, notifyRuns{0}, failures{0};
      auto repost = [&](Event& event, std::atomic<int>& runs) {
        if (event.error()) failures.fetch_add(1);
        if (runs.fetch_add(1) + 1 < kTimes) {
          std::error_code ec;
          channel->post(event, ec);
          if (ec) failures.fetch_add(1);
        }
      };
      timer.setCallback([&](Event& event) { repost(event, timerRuns); });
      dispatch.setCallback([&](Event& event) { repost(event, dispatchRuns); });
      notify.setCallback([&](Event& event) {
        static_cast<NotifyEvent&>(event).reset();
        repost(event, notifyRuns);
      });
      channel->post(timer);
      channel->post(dispatch);
      channel->post(notify);
      CPPUNIT_ASSERT_MESSAGE(backend, eventually([&] {
                               return timerRuns.load() == kTimes && dispatchRuns.load() == kTimes &&
                                      notifyRuns.load() == kTimes;
                             }));
      CPPUNIT_ASSERT(eventually([&] { return !timer.inFlight() && !dispatch.inFlight() && !notify.inFlight(); }));
      CPPUNIT_ASSERT_EQUAL_MESSAGE(backend, 0, failures.load());
      // Nothing more comes: a last zero timer drains the queue behind them.
      TimerEvent last(0ns);
      std::atomic<bool> lastDone{false};
      last.setCallback([&](Event&) { lastDone = true; });
      channel->post(last);
      CPPUNIT_ASSERT(eventually([&] { return lastDone.load() && !last.inFlight(); }));
      CPPUNIT_ASSERT_EQUAL(kTimes, timerRuns.load());
      CPPUNIT_ASSERT_EQUAL(kTimes, dispatchRuns.load());
      CPPUNIT_ASSERT_EQUAL(kTimes, notifyRuns.load());
    }
  }

  // Three threads cancel one timer as it expires; the timer is reused
  // every round (setDelay between posts).  At most one cancel() answers
  // true; the timer completes exactly once, cancelled when a cancel()
  // said true and successfully otherwise.
  void testCancelsRacingTimerExpiry() {
    for (std::unique_ptr<EventChannel>& channel : channelOnEveryBackend(2)) {
      const std::string backend = channel->backendName();
      const bool completionBackend = backend == "io_uring" || backend == "iocp";
      TimerEvent timer(0ns);
      std::atomic<int> completions{0};
      timer.setCallback([&](Event&) { completions.fetch_add(1); });
      const int n = rounds(200);
      for (int round = 0; round < n; ++round) {
        completions = 0;
        timer.setDelay(std::chrono::microseconds(round % 7 == 0 ? 0 : (round % 50) * 10));
        channel->post(timer);
        std::atomic<int> yes{0};
        StartLine line(3);
        std::vector<std::thread> cancellers;
        for (int i = 0; i < 2; ++i) {
          cancellers.emplace_back([&, i] {
            line.arrive();
            stagger((round + i) % 4);
            if (channel->cancel(timer)) yes.fetch_add(1);
          });
        }
        line.arrive();
        stagger(round % 3);
        if (channel->cancel(timer)) yes.fetch_add(1);
        for (std::thread& t : cancellers) t.join();
        CPPUNIT_ASSERT_MESSAGE(backend, yes.load() <= 1);
        CPPUNIT_ASSERT_MESSAGE(backend, eventually([&] { return completions.load() >= 1 && !timer.inFlight(); }));
        CPPUNIT_ASSERT_EQUAL_MESSAGE(backend + " round " + std::to_string(round), 1, completions.load());
        if (yes.load() == 1) {
          CPPUNIT_ASSERT_MESSAGE(backend + ": cancelled timer ended with " + describe(timer.error()),
                                 timer.error() == std::errc::operation_canceled ||
                                     (completionBackend && !timer.error()));
        } else {
          CPPUNIT_ASSERT_MESSAGE(backend + ": uncancelled timer ended with " + describe(timer.error()),
                                 !timer.error());
        }
        CPPUNIT_ASSERT(!channel->cancel(timer));
      }
      CPPUNIT_ASSERT_EQUAL(1, completions.load());
    }
  }

  // Delays at the top of the Duration range must not wrap into the past:
  // such timers stay pending while a zero timer posted after them
  // completes; cancel() and shutdown() end them with operation_canceled.
  // The bottom of the range is refused.
  void testExtremeTimerDelays() {
    for (std::unique_ptr<EventChannel>& channel : channelOnEveryBackend(1)) {
      const std::string backend = channel->backendName();
      for (Duration bad : {Duration::min(), Duration(-1), Duration::min() + Duration(1)}) {
        TimerEvent timer(bad);
        std::error_code ec;
        channel->post(timer, ec);
        CPPUNIT_ASSERT_MESSAGE(backend + ": " + describe(ec), ec == Errc::negative_timeout);
        CPPUNIT_ASSERT(!timer.inFlight());
      }
      std::vector<std::unique_ptr<TimerEvent>> huge;
      for (Duration delay : {Duration::max(), Duration::max() - Duration(1), Duration::max() / 2,
                             Duration(std::chrono::hours(24 * 365 * 200)), Duration(std::chrono::hours(24 * 365))}) {
        huge.push_back(std::make_unique<TimerEvent>(delay));
        channel->post(*huge.back());
      }
      TimerEvent zero(0ns);
      channel->post(zero);
      Event* first = channel->getEvent(generous(8s));
      CPPUNIT_ASSERT_MESSAGE(backend + ": nothing came back", first != nullptr);
      CPPUNIT_ASSERT_MESSAGE(backend + ": a huge timer fired at once", first == &zero);
      CPPUNIT_ASSERT(!zero.error());
      for (auto& timer : huge) CPPUNIT_ASSERT_MESSAGE(backend, timer->inFlight());
      CPPUNIT_ASSERT(channel->cancel(*huge[0]));
      Event* cancelled = channel->getEvent(generous(8s));
      CPPUNIT_ASSERT(cancelled == huge[0].get());
      CPPUNIT_ASSERT(cancelled->error() == std::errc::operation_canceled);
      // The same timer, re-posted with the largest delay again.
      channel->post(*huge[0]);
      CPPUNIT_ASSERT(huge[0]->inFlight());
      channel->shutdown();
      int back = 0;
      while (Event* event = channel->getEvent(0ns)) {
        CPPUNIT_ASSERT_MESSAGE(backend + ": " + describe(event->error()),
                               event->error() == std::errc::operation_canceled);
        ++back;
      }
      CPPUNIT_ASSERT_EQUAL_MESSAGE(backend, static_cast<int>(huge.size()), back);
      for (auto& timer : huge) CPPUNIT_ASSERT(!timer->inFlight());
    }
  }

  // getEvent() and NotifyEvent::wait() with timeouts at both ends of the
  // range: zero and negative ones return at once with nothing; one just
  // under kInfiniteTimeout waits (it must not overflow into the past).
  void testExtremeWaitTimeouts() {
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
    for (Duration timeout : {Duration(0), Duration(-1), Duration::min(), Duration(-std::chrono::hours(1))}) {
      std::atomic<bool> done{false};
      Event* got = reinterpret_cast<Event*>(1);
      bool notified = true;
      NotifyEvent notify;
      std::thread waiter([&] {
        got = channel->getEvent(timeout);
        notified = notify.wait(timeout);
        done = true;
      });
      const bool finished = eventually([&] { return done.load(); });
      if (!finished) {
        // Release it so the test can report rather than hang.
        channel->post(notify);
        DispatchEvent unblock([] {});
        channel->post(unblock);
        waiter.join();
        CPPUNIT_FAIL("a wait with timeout " + std::to_string(timeout.count()) + " ns blocked");
      }
      waiter.join();
      CPPUNIT_ASSERT(got == nullptr);
      CPPUNIT_ASSERT(!notified);
    }
    for (Duration timeout : {Duration::max() - Duration(1), Duration::max() / 2, Duration(Duration::max() - 1h)}) {
      std::atomic<int> stage{0};
      Event* got = nullptr;
      bool notified = false;
      NotifyEvent notify;
      DispatchEvent dispatch([] {});
      std::thread waiter([&] {
        stage = 1;
        got = channel->getEvent(timeout);
        stage = 2;
        notified = notify.wait(timeout);
        stage = 3;
      });
      CPPUNIT_ASSERT(eventually([&] { return stage.load() >= 1; }));
      CPPUNIT_ASSERT(eventually([&] { return channel->poolStats().inGetEvent >= 1 || stage.load() >= 2; }));
      channel->post(dispatch);
      CPPUNIT_ASSERT(eventually([&] { return stage.load() >= 2; }));
      channel->post(notify);
      CPPUNIT_ASSERT(eventually([&] { return stage.load() == 3; }));
      waiter.join();
      CPPUNIT_ASSERT_MESSAGE("getEvent(" + std::to_string(timeout.count()) + " ns) gave up", got == &dispatch);
      CPPUNIT_ASSERT_MESSAGE("wait(" + std::to_string(timeout.count()) + " ns) gave up", notified);
    }
  }

  // The channel is destroyed from outside while its workers run
  // callbacks, with events queued behind them, timers of every size
  // pending and callback-less events completed but not taken.  Every
  // event is handed back: its callback ran exactly once, or it is out of
  // flight with operation_canceled.
  void testDestroyWhileCallbacksRunAndTimersWait() {
    const int n = rounds(20);
    for (int round = 0; round < n; ++round) {
      for (std::unique_ptr<EventChannel>& channel : channelOnEveryBackend(2)) {
        const std::string backend = channel->backendName();
        constexpr int kEvents = 24;
        std::atomic<int> running{0};
        std::vector<std::unique_ptr<DispatchEvent>> dispatches;
        std::vector<std::atomic<int>> callbackRuns(kEvents);
        for (int i = 0; i < kEvents; ++i) {
          dispatches.push_back(std::make_unique<DispatchEvent>([&running, i] {
            running.fetch_add(1);
            stagger(20 + i);
          }));
          if (i % 2 == 0) {
            dispatches.back()->setCallback([&callbackRuns, i](Event&) { callbackRuns[i].fetch_add(1); });
          }
        }
        std::vector<std::unique_ptr<TimerEvent>> timers;
        for (Duration delay : {Duration(0), Duration(1000), Duration(std::chrono::hours(1)), Duration::max()}) {
          timers.push_back(std::make_unique<TimerEvent>(delay));
          if (delay > 1h) timers.back()->setCallback([](Event&) {});
        }
        for (auto& timer : timers) channel->post(*timer);
        for (auto& dispatch : dispatches) channel->post(*dispatch);
        CPPUNIT_ASSERT(eventually([&] { return running.load() >= 1; }));
        stagger(round % 10);
        channel.reset();
        for (int i = 0; i < kEvents; ++i) {
          CPPUNIT_ASSERT_MESSAGE(backend, !dispatches[i]->inFlight());
          if (i % 2 == 0) CPPUNIT_ASSERT_EQUAL_MESSAGE(backend, 1, callbackRuns[i].load());
        }
        for (auto& timer : timers) {
          CPPUNIT_ASSERT_MESSAGE(backend, !timer->inFlight());
          if (timer->delay() > 1h) {
            CPPUNIT_ASSERT_MESSAGE(backend + ": " + describe(timer->error()),
                                   timer->error() == std::errc::operation_canceled);
          }
        }
      }
    }
  }

  // poolStats() sampled continuously while workers block in
  // NotifyEvent::wait() (spares start), threads come and go from
  // getEvent() and the spares idle out: every snapshot is consistent.
  void testPoolStatsStayConsistent() {
    EventChannel::Options options;
    options.initialThreads = 2;
    options.maxThreads = 5;
    options.idleTimeout = 20ms;
    std::unique_ptr<EventChannel> channel = evchan::test::createOrSkip(options);
    std::atomic<bool> stop{false};
    std::atomic<int> bad{0};
    std::string firstBad;
    std::mutex firstBadMutex;
    std::thread sampler([&] {
      while (!stop.load()) {
        const ThreadPoolStats s = channel->poolStats();
        std::string why;
        if (s.current < 0 || s.idle < 0 || s.blocked < 0 || s.inGetEvent < 0 || s.peak < 0) why = "negative";
        else if (s.current > s.maxThreads) why = "current above max";
        else if (s.peak > s.maxThreads) why = "peak above max";
        else if (s.peak < s.current) why = "peak below current";
        else if (s.idle > s.current) why = "idle above current";
        else if (s.blocked > s.current) why = "blocked above current";
        else if (s.exited > s.started) why = "exited above started";
        else if (s.initial != 2 || s.maxThreads != 5) why = "settings changed";
        else if (s.startedInitial + s.startedForBlockingCalls + s.startedForPresumedStuck + s.startedForGrowth !=
                 s.started)
          why = "started is not the sum of its parts";
        else if (static_cast<std::uint64_t>(s.current) != s.started - s.exited)
          why = "current is not started - exited";
        if (!why.empty()) {
          if (bad.fetch_add(1) == 0) {
            std::lock_guard<std::mutex> lock(firstBadMutex);
            firstBad = why + ": current " + std::to_string(s.current) + " peak " + std::to_string(s.peak) +
                       " idle " + std::to_string(s.idle) + " blocked " + std::to_string(s.blocked) + " started " +
                       std::to_string(s.started) + " exited " + std::to_string(s.exited) + " inGetEvent " +
                       std::to_string(s.inGetEvent);
          }
        }
      }
    });
    const int n = rounds(15);
    for (int round = 0; round < n; ++round) {
      NotifyEvent gate;
      std::vector<std::unique_ptr<DispatchEvent>> blockers;
      std::atomic<int> waiting{0};
      for (int i = 0; i < 6; ++i) {
        blockers.push_back(std::make_unique<DispatchEvent>([&] {
          waiting.fetch_add(1);
          gate.wait(generous(10s));
        }));
        blockers.back()->setCallback([](Event&) {});
        channel->post(*blockers.back());
      }
      std::vector<std::thread> consumers;
      for (int i = 0; i < 3; ++i) consumers.emplace_back([&] { channel->getEvent(1ms); });
      CPPUNIT_ASSERT(eventually([&] { return waiting.load() >= 4; }));
      channel->post(gate);
      for (std::thread& t : consumers) t.join();
      CPPUNIT_ASSERT(eventually([&] {
        for (auto& b : blockers)
          if (b->inFlight()) return false;
        return true;
      }));
      CPPUNIT_ASSERT(eventually([&] { return channel->poolStats().current == 2; }));
    }
    stop = true;
    sampler.join();
    std::lock_guard<std::mutex> lock(firstBadMutex);
    CPPUNIT_ASSERT_EQUAL_MESSAGE(firstBad, 0, bad.load());
  }

  // File calls with zero sizes (a null buffer included), reads far past
  // the end, and offsets beyond off_t, which must fail cleanly and leave
  // the file as it was.
  void testFileZeroSizesAndOffsetsBeyondOffT() {
    TempPath path;
    File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
    const char data[] = "0123456789";
    CPPUNIT_ASSERT_EQUAL(std::size_t(10), file.writeAt(0, data, 10));
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), file.writeAt(1 << 20, data, 0, ec));
    CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);
    CPPUNIT_ASSERT_EQUAL(std::uint64_t(10), file.size());
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), file.writeAt(0, nullptr, 0, ec));
    CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);
    char buffer[16] = {};
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), file.readAt(0, nullptr, 0, ec));
    CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), file.readAt(std::uint64_t(1) << 62, buffer, sizeof buffer, ec));
    CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);
    for (std::uint64_t offset : {std::uint64_t(1) << 63, ~std::uint64_t(0), (std::uint64_t(1) << 63) + 1}) {
      ec.clear();
      const std::size_t read = file.readAt(offset, buffer, sizeof buffer, ec);
      CPPUNIT_ASSERT_MESSAGE("readAt " + std::to_string(offset) + ": " + describe(ec),
                             ec == std::errc::invalid_argument);
      CPPUNIT_ASSERT_EQUAL(std::size_t(0), read);
      ec.clear();
      const std::size_t written = file.writeAt(offset, data, 4, ec);
      CPPUNIT_ASSERT_MESSAGE("writeAt " + std::to_string(offset) + ": " + describe(ec),
                             ec == std::errc::invalid_argument);
      CPPUNIT_ASSERT_EQUAL(std::size_t(0), written);
    }
    // Just below 2^63: the end of the write would pass off_t.
    ec.clear();
    file.writeAt((std::uint64_t(1) << 63) - 2, data, 4, ec);
    CPPUNIT_ASSERT_MESSAGE("a write across 2^63 succeeded", ec);
    CPPUNIT_ASSERT_EQUAL(std::uint64_t(10), file.size());
    CPPUNIT_ASSERT_EQUAL(std::size_t(10), file.readAt(0, buffer, sizeof buffer));
    CPPUNIT_ASSERT_EQUAL(std::string(data), std::string(buffer, 10));
  }

  // Zero-byte FileReadEvents and FileWriteEvents (beyond the end too) on
  // every backend complete without error, move nothing and never extend
  // the file; an event on a File closed before post() is refused.
  void testZeroSizeFileEventsOnEveryBackend() {
    for (std::unique_ptr<EventChannel>& channel : channelOnEveryBackend(1, Work::files)) {
      const std::string backend = channel->backendName();
      TempPath path;
      File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
      CPPUNIT_ASSERT_EQUAL(std::size_t(3), file.writeAt(0, "abc", 3));
      char buffer[4] = {'x', 'x', 'x', 'x'};
      FileReadEvent read(file, 1, buffer, 0);
      FileReadEvent readBeyond(file, 1 << 30, buffer, sizeof buffer);
      FileWriteEvent write(file, 1 << 30, "zz", 0);
      channel->post(read);
      channel->post(readBeyond);
      channel->post(write);
      for (int i = 0; i < 3; ++i) {
        Event* event = channel->getEvent(generous(8s));
        CPPUNIT_ASSERT_MESSAGE(backend + ": nothing came back", event != nullptr);
        CPPUNIT_ASSERT_MESSAGE(backend + ": " + describe(event->error()), !event->error());
      }
      CPPUNIT_ASSERT_EQUAL_MESSAGE(backend, std::size_t(0), read.bytesTransferred());
      CPPUNIT_ASSERT_EQUAL_MESSAGE(backend, std::size_t(0), readBeyond.bytesTransferred());
      CPPUNIT_ASSERT_EQUAL_MESSAGE(backend, std::size_t(0), write.bytesTransferred());
      CPPUNIT_ASSERT_EQUAL_MESSAGE(backend, std::uint64_t(3), file.size());
      CPPUNIT_ASSERT_EQUAL(std::string("xxxx"), std::string(buffer, 4));
      file.close();
      std::error_code ec;
      channel->post(read, ec);
      CPPUNIT_ASSERT_MESSAGE(backend + ": " + describe(ec), ec == Errc::not_open);
      CPPUNIT_ASSERT(!read.inFlight());
    }
  }
  // A read whose offset fits off_t but whose end does not (2^63 - 1 and
  // a few bytes) is a read beyond the end of the file: 0 bytes, no error
  // (file.h), from File::readAt() on a thread and in a task, and from a
  // FileReadEvent on every backend.  pread(2) refuses pos + count beyond
  // off_t with EINVAL.
  void testReadsReachingTheEndOfOffTFindTheEnd() {
    TempPath path;
    File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
    CPPUNIT_ASSERT_EQUAL(std::size_t(3), file.writeAt(0, "abc", 3));
    const std::uint64_t last = static_cast<std::uint64_t>(INT64_MAX);
    char buffer[16] = {};
    for (std::uint64_t offset : {last, last - 1, last - 15, last - 16}) {
      std::error_code ec;
      const std::size_t n = file.readAt(offset, buffer, sizeof buffer, ec);
      CPPUNIT_ASSERT_MESSAGE("readAt " + std::to_string(offset) + ": " + describe(ec), !ec);
      CPPUNIT_ASSERT_EQUAL(std::size_t(0), n);
    }
    for (std::unique_ptr<EventChannel>& channel : channelOnEveryBackend(1, Work::files)) {
      const std::string backend = channel->backendName();
      for (std::uint64_t offset : {last, last - 1, last - 15}) {
        FileReadEvent read(file, offset, buffer, sizeof buffer);
        channel->post(read);
        Event* event = channel->getEvent(generous(8s));
        CPPUNIT_ASSERT_MESSAGE(backend + ": nothing came back", event == &read);
        CPPUNIT_ASSERT_MESSAGE(backend + " read at " + std::to_string(offset) + ": " + describe(read.error()),
                               !read.error());
        CPPUNIT_ASSERT_EQUAL_MESSAGE(backend, std::size_t(0), read.bytesTransferred());
      }
      std::error_code taskError;
      std::size_t taskRead = 99;
      std::error_code spawnError;
      evchan::TaskHandle task = channel->spawn(
          [&] { taskRead = file.readAt(last - 1, buffer, sizeof buffer, taskError); }, evchan::TaskOptions(),
          spawnError);
      if (spawnError == std::errc::function_not_supported) continue;  // a build without tasks
      CPPUNIT_ASSERT_MESSAGE(describe(spawnError), !spawnError);
      evchan::test::joinWithin(task);
      CPPUNIT_ASSERT_MESSAGE(backend + " task: " + describe(taskError), !taskError);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(backend, std::size_t(0), taskRead);
    }
  }
  // Inside a DispatchEvent's function the event is in flight: post() of
  // it is already_in_flight, setCallback() throws, cancel() is false here
  // and on another channel; from its callback, cancel() is false too.
  void testEventSeesItselfInFlightWhileItRuns() {
    for (std::unique_ptr<EventChannel>& channel : channelOnEveryBackend(1)) {
      const std::string backend = channel->backendName();
      std::unique_ptr<EventChannel> other = evchan::test::makeChannel(1);
      std::atomic<int> wrong{0}, callbacks{0};
      DispatchEvent* self = nullptr;
      DispatchEvent dispatch([&] {
        std::error_code ec;
        channel->post(*self, ec);
        if (ec != Errc::already_in_flight) wrong.fetch_add(1);
        if (!self->inFlight()) wrong.fetch_add(1);
        if (channel->cancel(*self) || other->cancel(*self)) wrong.fetch_add(1);
        try {
          self->setCallback(nullptr);
          wrong.fetch_add(1);
        } catch (const std::system_error& e) {
          if (e.code() != Errc::already_in_flight) wrong.fetch_add(1);
        }
      });
      self = &dispatch;
      dispatch.setCallback([&](Event& event) {
        if (channel->cancel(event) || event.inFlight()) wrong.fetch_add(1);
        callbacks.fetch_add(1);
      });
      channel->post(dispatch);
      CPPUNIT_ASSERT(eventually([&] { return callbacks.load() == 1 && !dispatch.inFlight(); }));
      CPPUNIT_ASSERT_EQUAL_MESSAGE(backend, 0, wrong.load());
      CPPUNIT_ASSERT_MESSAGE(describe(dispatch.error()), !dispatch.error());
      // A timer posted here is not cancelled by the other channel.
      TimerEvent timer(1h);
      channel->post(timer);
      CPPUNIT_ASSERT(!other->cancel(timer));
      CPPUNIT_ASSERT(timer.inFlight());
      CPPUNIT_ASSERT(channel->cancel(timer));
      CPPUNIT_ASSERT(channel->getEvent(generous(8s)) == &timer);
    }
  }

  // The callback owns the event it is given and may destroy it: timers,
  // dispatch and notify events deleted by their own callbacks (and a
  // DispatchEvent deleted by the callback of a timer it re-posted) on
  // every backend, under AddressSanitizer in CI.
  void testEventsDestroyedInTheirOwnCallbacks() {
    constexpr int kEach = 50;
    for (std::unique_ptr<EventChannel>& channel : channelOnEveryBackend(2)) {
      const std::string backend = channel->backendName();
      std::atomic<int> destroyed{0};
      for (int i = 0; i < kEach; ++i) {
        auto* timer = new TimerEvent(std::chrono::microseconds(i % 5));
        timer->setCallback([&destroyed](Event& event) {
          delete &event;
          destroyed.fetch_add(1);
        });
        channel->post(*timer);
        auto* dispatch = new DispatchEvent([] {});
        dispatch->setCallback([&destroyed](Event& event) {
          delete &event;
          destroyed.fetch_add(1);
        });
        channel->post(*dispatch);
        auto* notify = new NotifyEvent;
        notify->setCallback([&destroyed](Event& event) {
          delete &event;
          destroyed.fetch_add(1);
        });
        channel->post(*notify);
        // A timer cancelled at once, deleted in its callback.
        auto* cancelled = new TimerEvent(1h);
        cancelled->setCallback([&destroyed](Event& event) {
          const bool wasCancelled = event.error() == std::errc::operation_canceled;
          delete &event;
          if (wasCancelled) destroyed.fetch_add(1);
        });
        channel->post(*cancelled);
        CPPUNIT_ASSERT(channel->cancel(*cancelled));
      }
      CPPUNIT_ASSERT_MESSAGE(backend, eventually([&] { return destroyed.load() == 4 * kEach; }));
    }
  }

  // Four threads post one NotifyEvent (with a callback that resets it)
  // over and over: every accepted post runs the callback once, every
  // refused one is already_in_flight.
  void testNotifyPostedFromManyThreads() {
    for (std::unique_ptr<EventChannel>& channel : channelOnEveryBackend(2)) {
      const std::string backend = channel->backendName();
      NotifyEvent notify;
      std::atomic<int> callbacks{0}, accepted{0}, wrong{0};
      notify.setCallback([&](Event&) { callbacks.fetch_add(1); });
      const int n = rounds(2000);
      StartLine line(4);
      std::vector<std::thread> posters;
      for (int t = 0; t < 4; ++t) {
        posters.emplace_back([&] {
          line.arrive();
          for (int i = 0; i < n; ++i) {
            std::error_code ec;
            channel->post(notify, ec);
            if (!ec) accepted.fetch_add(1);
            else if (ec != Errc::already_in_flight) wrong.fetch_add(1);
          }
        });
      }
      for (std::thread& t : posters) t.join();
      CPPUNIT_ASSERT(eventually([&] { return !notify.inFlight() && callbacks.load() == accepted.load(); }));
      CPPUNIT_ASSERT_EQUAL_MESSAGE(backend, 0, wrong.load());
      CPPUNIT_ASSERT(accepted.load() >= 1);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(backend, accepted.load(), callbacks.load());
      CPPUNIT_ASSERT(notify.isSignalled());
      CPPUNIT_ASSERT(notify.wait(0ns));
    }
  }

  // Many timers with short, different delays; three threads cancel them
  // in different orders while they expire (the timer set loses entries
  // from its middle).  Each timer completes exactly once; at most one
  // cancel() per timer says true, and then it ended cancelled.
  void testCancelStormOverManyTimers() {
    for (std::unique_ptr<EventChannel>& channel : channelOnEveryBackend(2)) {
      const std::string backend = channel->backendName();
      const bool completionBackend = backend == "io_uring" || backend == "iocp";
      const int n = rounds(10);
      for (int round = 0; round < n; ++round) {
        constexpr int kTimers = 200;
        std::vector<std::unique_ptr<TimerEvent>> timers;
        std::vector<std::atomic<int>> completions(kTimers), yes(kTimers);
        for (int i = 0; i < kTimers; ++i) {
          timers.push_back(std::make_unique<TimerEvent>(std::chrono::microseconds((i * 37) % 2000)));
          timers.back()->setCallback([&completions, i](Event&) { completions[i].fetch_add(1); });
        }
        for (auto& timer : timers) channel->post(*timer);
        StartLine line(3);
        std::vector<std::thread> cancellers;
        for (int t = 0; t < 3; ++t) {
          cancellers.emplace_back([&, t] {
            line.arrive();
            for (int k = 0; k < kTimers; ++k) {
              const int i = t == 0 ? k : t == 1 ? kTimers - 1 - k : (k * 7) % kTimers;
              if (channel->cancel(*timers[i])) yes[i].fetch_add(1);
            }
          });
        }
        for (std::thread& t : cancellers) t.join();
        CPPUNIT_ASSERT(eventually([&] {
          for (int i = 0; i < kTimers; ++i)
            if (completions[i].load() == 0 || timers[i]->inFlight()) return false;
          return true;
        }));
        for (int i = 0; i < kTimers; ++i) {
          const std::string what = backend + " timer " + std::to_string(i);
          CPPUNIT_ASSERT_EQUAL_MESSAGE(what, 1, completions[i].load());
          CPPUNIT_ASSERT_MESSAGE(what, yes[i].load() <= 1);
          if (yes[i].load() == 1) {
            CPPUNIT_ASSERT_MESSAGE(what + ": " + describe(timers[i]->error()),
                                   timers[i]->error() == std::errc::operation_canceled ||
                                       (completionBackend && !timers[i]->error()));
          } else {
            CPPUNIT_ASSERT_MESSAGE(what + ": " + describe(timers[i]->error()), !timers[i]->error());
          }
        }
      }
    }
  }
  // Two threads post one timer to two different channels at once: one
  // post() wins, the other is already_in_flight; only the winner's
  // channel can cancel it, and it comes back from that channel alone.
  void testOneEventPostedToTwoChannelsAtOnce() {
    std::vector<std::unique_ptr<EventChannel>> channels = channelOnEveryBackend(1);
    for (std::size_t c = 0; c < channels.size(); ++c) {
      EventChannel& a = *channels[c];
      EventChannel& b = *channels[(c + 1) % channels.size()];
      if (&a == &b) continue;
      const std::string backends = std::string(a.backendName()) + "/" + b.backendName();
      const int n = rounds(40);
      for (int round = 0; round < n; ++round) {
        TimerEvent timer(1h);
        std::error_code results[2];
        StartLine line(2);
        std::thread other([&] {
          line.arrive();
          stagger(round % 4);
          b.post(timer, results[1]);
        });
        line.arrive();
        stagger((round / 4) % 4);
        a.post(timer, results[0]);
        other.join();
        CPPUNIT_ASSERT_EQUAL_MESSAGE(backends, 1, (!results[0] ? 1 : 0) + (!results[1] ? 1 : 0));
        CPPUNIT_ASSERT((results[0] ? results[0] : results[1]) == Errc::already_in_flight);
        EventChannel& winner = !results[0] ? a : b;
        EventChannel& loser = !results[0] ? b : a;
        CPPUNIT_ASSERT_MESSAGE(backends, !loser.cancel(timer));
        CPPUNIT_ASSERT_MESSAGE(backends, winner.cancel(timer));
        CPPUNIT_ASSERT_MESSAGE(backends, winner.getEvent(generous(8s)) == &timer);
        CPPUNIT_ASSERT(loser.getEvent(0ns) == nullptr);
        CPPUNIT_ASSERT(timer.error() == std::errc::operation_canceled);
      }
    }
  }
  // notify_event.h: a worker of a channel waiting in wait() is released
  // (false) when that channel shuts down.  Only that worker: a plain
  // thread waiting on the same NotifyEvent, and a worker of another
  // channel waiting on it later, still wait for the post, and wait()
  // then returns true for them.
  void testShutdownReleasesOnlyItsOwnWorkersFromNotifyWait() {
    std::unique_ptr<EventChannel> a = evchan::test::makeChannel(2);
    std::unique_ptr<EventChannel> b = evchan::test::makeChannel(2);
    NotifyEvent notify;
    std::atomic<int> workerResult{-1}, threadResult{-1}, otherWorkerResult{-1};
    DispatchEvent onA([&] { workerResult = notify.wait() ? 1 : 0; });
    onA.setCallback([](Event&) {});
    a->post(onA);
    std::thread plain([&] { threadResult = notify.wait() ? 1 : 0; });
    CPPUNIT_ASSERT(eventually([&] { return a->poolStats().blocked >= 1; }));
    a->shutdown();
    CPPUNIT_ASSERT_EQUAL_MESSAGE("the shutting-down channel's worker", 0, workerResult.load());
    CPPUNIT_ASSERT(!notify.isSignalled());
    DispatchEvent onB([&] { otherWorkerResult = notify.wait() ? 1 : 0; });
    onB.setCallback([](Event&) {});
    b->post(onB);
    CPPUNIT_ASSERT(eventually([&] { return b->poolStats().blocked >= 1 || otherWorkerResult.load() != -1; }));
    const int threadEarly = threadResult.load(), otherEarly = otherWorkerResult.load();
    b->post(notify);
    plain.join();
    CPPUNIT_ASSERT(eventually([&] { return !onB.inFlight(); }));
    CPPUNIT_ASSERT_EQUAL_MESSAGE("a plain thread returned before the post", -1, threadEarly);
    CPPUNIT_ASSERT_EQUAL_MESSAGE("another channel's worker returned before the post", -1, otherEarly);
    CPPUNIT_ASSERT_EQUAL(1, threadResult.load());
    CPPUNIT_ASSERT_EQUAL(1, otherWorkerResult.load());
  }
  // A NotifyEvent without a callback completes in post() itself: it is
  // out of flight when post() returns, never queued for getEvent(), and
  // may be posted again at once, on every backend.
  void testNotifyWithoutCallbackIsNeverQueued() {
    for (std::unique_ptr<EventChannel>& channel : channelOnEveryBackend(1)) {
      const std::string backend = channel->backendName();
      NotifyEvent notify;
      for (int i = 0; i < 100; ++i) {
        channel->post(notify);
        CPPUNIT_ASSERT_MESSAGE(backend, !notify.inFlight());
        CPPUNIT_ASSERT(notify.isSignalled());
        if (i % 2 == 0) notify.reset();
      }
      CPPUNIT_ASSERT_MESSAGE(backend, channel->getEvent(0ns) == nullptr);
      DispatchEvent marker([] {});
      channel->post(marker);
      CPPUNIT_ASSERT_MESSAGE(backend, channel->getEvent(generous(8s)) == &marker);
      CPPUNIT_ASSERT_MESSAGE(backend, channel->getEvent(0ns) == nullptr);
    }
  }

  // With idleTimeout zero the spares exit as soon as they idle; stats stay
  // consistent throughout, and once shutdown() returned every worker has
  // exited and nobody counts as idle, blocked or in getEvent().
  void testPoolStatsAfterShutdownWithoutIdleTimeout() {
    EventChannel::Options options;
    options.initialThreads = 1;
    options.maxThreads = 4;
    options.idleTimeout = 0ns;
    std::unique_ptr<EventChannel> channel = evchan::test::createOrSkip(options);
    const int n = rounds(20);
    for (int round = 0; round < n; ++round) {
      NotifyEvent gate;
      std::atomic<int> waiting{0};
      std::vector<std::unique_ptr<DispatchEvent>> blockers;
      for (int i = 0; i < 3; ++i) {
        blockers.push_back(std::make_unique<DispatchEvent>([&] {
          waiting.fetch_add(1);
          gate.wait(generous(10s));
        }));
        blockers.back()->setCallback([](Event&) {});
        channel->post(*blockers.back());
      }
      CPPUNIT_ASSERT(eventually([&] { return waiting.load() == 3; }));
      const ThreadPoolStats busy = channel->poolStats();
      CPPUNIT_ASSERT(busy.current <= busy.maxThreads && busy.current >= 3);
      CPPUNIT_ASSERT_EQUAL(static_cast<std::uint64_t>(busy.current), busy.started - busy.exited);
      channel->post(gate);
      CPPUNIT_ASSERT(eventually([&] {
        for (auto& b : blockers)
          if (b->inFlight()) return false;
        return channel->poolStats().current == 1;
      }));
    }
    std::thread consumer([&] { channel->getEvent(); });
    CPPUNIT_ASSERT(eventually([&] { return channel->poolStats().inGetEvent >= 1; }));
    channel->shutdown();
    consumer.join();
    const ThreadPoolStats after = channel->poolStats();
    CPPUNIT_ASSERT_EQUAL(0, after.current);
    CPPUNIT_ASSERT_EQUAL(0, after.idle);
    CPPUNIT_ASSERT_EQUAL(0, after.blocked);
    CPPUNIT_ASSERT_EQUAL(0, after.inGetEvent);
    CPPUNIT_ASSERT_EQUAL(after.started, after.exited);
    CPPUNIT_ASSERT(after.peak >= 3 && after.peak <= 4);
  }

  // A write that starts below 2^63 but would end beyond it fails on every
  // backend and leaves the file as it was; a zero-byte read at 2^63 - 1
  // is the end of the file.
  void testWritesAcrossTheEndOfOffTFailOnEveryBackend() {
    TempPath path;
    File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
    CPPUNIT_ASSERT_EQUAL(std::size_t(3), file.writeAt(0, "abc", 3));
    const std::uint64_t last = static_cast<std::uint64_t>(INT64_MAX);
    for (std::unique_ptr<EventChannel>& channel : channelOnEveryBackend(1, Work::files)) {
      const std::string backend = channel->backendName();
      FileWriteEvent write(file, last - 1, "wxyz", 4);
      channel->post(write);
      CPPUNIT_ASSERT_MESSAGE(backend, channel->getEvent(generous(8s)) == &write);
      CPPUNIT_ASSERT_MESSAGE(backend + ": a write across 2^63 succeeded", write.error());
      CPPUNIT_ASSERT_EQUAL_MESSAGE(backend, std::uint64_t(3), file.size());
      char byte = 0;
      FileReadEvent read(file, last, &byte, 0);
      channel->post(read);
      CPPUNIT_ASSERT_MESSAGE(backend, channel->getEvent(generous(8s)) == &read);
      CPPUNIT_ASSERT_MESSAGE(backend + ": " + describe(read.error()), !read.error());
      CPPUNIT_ASSERT_EQUAL(std::size_t(0), read.bytesTransferred());
    }
  }
  // Two threads cancel pending timers (half with callbacks, half for
  // getEvent()) while a third shuts the channel down; then it is
  // destroyed.  Every timer is out of flight once the destructor
  // returned, cancelled; each callback ran exactly once, and no two
  // cancel() calls both said true for a timer.
  void testCancelsRacingDestruction() {
    const int n = rounds(10);
    for (int round = 0; round < n; ++round) {
      for (std::unique_ptr<EventChannel>& channel : channelOnEveryBackend(2)) {
        const std::string backend = channel->backendName();
        constexpr int kTimers = 64;
        std::vector<std::unique_ptr<TimerEvent>> timers;
        std::vector<std::atomic<int>> callbacks(kTimers), yes(kTimers);
        for (int i = 0; i < kTimers; ++i) {
          timers.push_back(std::make_unique<TimerEvent>(i % 8 == 0 ? Duration(0) : Duration(1h)));
          if (i % 2 == 0) timers.back()->setCallback([&callbacks, i](Event&) { callbacks[i].fetch_add(1); });
          channel->post(*timers.back());
        }
        EventChannel* raw = channel.get();
        StartLine line(3);
        std::vector<std::thread> cancellers;
        for (int t = 0; t < 2; ++t) {
          cancellers.emplace_back([&, t] {
            line.arrive();
            for (int k = 0; k < kTimers; ++k) {
              const int i = t == 0 ? k : kTimers - 1 - k;
              if (raw->cancel(*timers[i])) yes[i].fetch_add(1);
            }
          });
        }
        line.arrive();
        stagger(round % 8);
        // The shutdown races the cancellers; the destructor waits for them
        // (no call may start once it has begun).
        std::thread shutter([&] { raw->shutdown(); });
        for (std::thread& t : cancellers) t.join();
        shutter.join();
        channel.reset();
        for (int i = 0; i < kTimers; ++i) {
          const std::string what = backend + " timer " + std::to_string(i);
          CPPUNIT_ASSERT_MESSAGE(what, !timers[i]->inFlight());
          CPPUNIT_ASSERT_MESSAGE(what, yes[i].load() <= 1);
          if (i % 2 == 0) CPPUNIT_ASSERT_EQUAL_MESSAGE(what, 1, callbacks[i].load());
          if (i % 8 != 0) {
            CPPUNIT_ASSERT_MESSAGE(what + ": " + describe(timers[i]->error()),
                                   timers[i]->error() == std::errc::operation_canceled);
          }
        }
      }
    }
  }
  // A timer re-posts itself from its callback (short delays, up to a
  // count) while two threads keep cancelling it.  Every accepted post
  // completes exactly once, and completions with operation_canceled match
  // the cancel() calls that said true (on io_uring and iocp a true cancel
  // may still complete with success: header).
  void testCancelsRacingRepostsFromTheCallback() {
    for (std::unique_ptr<EventChannel>& channel : channelOnEveryBackend(2)) {
      const std::string backend = channel->backendName();
      const bool completionBackend = backend == "io_uring" || backend == "iocp";
      const int posts = rounds(1500);
      TimerEvent timer(0ns);
      std::atomic<int> accepted{0}, completions{0}, cancelledCompletions{0}, wrong{0};
      std::atomic<bool> finished{false};
      timer.setCallback([&](Event& event) {
        const int done = completions.fetch_add(1) + 1;
        if (event.error() == std::errc::operation_canceled) cancelledCompletions.fetch_add(1);
        else if (event.error()) wrong.fetch_add(1);
        if (done >= posts) {
          finished = true;
          return;
        }
        static_cast<TimerEvent&>(event).setDelay(std::chrono::microseconds(done % 3 == 0 ? 0 : done % 40));
        // Counted before post(): once it returns, the re-posted timer may
        // already have completed on the other worker, ended the test and
        // taken these counters out of scope.
        accepted.fetch_add(1);
        std::error_code ec;
        channel->post(event, ec);
        if (ec) {
          accepted.fetch_sub(1);
          wrong.fetch_add(1);
          finished = true;
        }
      });
      accepted = 1;
      channel->post(timer);
      std::atomic<int> yes{0};
      std::vector<std::thread> cancellers;
      for (int t = 0; t < 2; ++t) {
        cancellers.emplace_back([&] {
          while (!finished.load()) {
            if (channel->cancel(timer)) yes.fetch_add(1);
          }
        });
      }
      CPPUNIT_ASSERT_MESSAGE(backend, eventually([&] { return finished.load(); }, 30s));
      for (std::thread& t : cancellers) t.join();
      CPPUNIT_ASSERT(eventually([&] { return !timer.inFlight(); }));
      CPPUNIT_ASSERT_EQUAL_MESSAGE(backend, 0, wrong.load());
      CPPUNIT_ASSERT_EQUAL_MESSAGE(backend, accepted.load(), completions.load());
      if (completionBackend) {
        CPPUNIT_ASSERT_MESSAGE(backend, cancelledCompletions.load() <= yes.load());
      } else {
        CPPUNIT_ASSERT_EQUAL_MESSAGE(backend, yes.load(), cancelledCompletions.load());
      }
    }
  }
  // A DispatchEvent with an empty function (or one emptied by
  // setFunction()) must neither crash a worker nor vanish: post() refuses
  // it with invalid_argument, or it comes back once, successful or with
  // the error of a throwing function (state_not_recoverable).
  void testDispatchWithoutAFunction() {
    for (std::unique_ptr<EventChannel>& channel : channelOnEveryBackend(1)) {
      const std::string backend = channel->backendName();
      DispatchEvent empty(nullptr);
      DispatchEvent emptied([] {});
      emptied.setFunction(nullptr);
      for (DispatchEvent* event : {&empty, &emptied}) {
        std::error_code ec;
        channel->post(*event, ec);
        if (ec) {
          CPPUNIT_ASSERT_MESSAGE(backend + ": " + describe(ec), ec == std::errc::invalid_argument);
          CPPUNIT_ASSERT(!event->inFlight());
          continue;
        }
        CPPUNIT_ASSERT_MESSAGE(backend, channel->getEvent(generous(8s)) == event);
        CPPUNIT_ASSERT_MESSAGE(backend + ": " + describe(event->error()),
                               !event->error() || event->error() == std::errc::state_not_recoverable);
      }
      // The worker still runs work.
      DispatchEvent after([] {});
      channel->post(after);
      CPPUNIT_ASSERT_MESSAGE(backend, channel->getEvent(generous(8s)) == &after);
      CPPUNIT_ASSERT(channel->getEvent(0ns) == nullptr);
    }
  }
  // Every worker of a channel blocks in NotifyEvent::wait() (two on one
  // event, one on another, the same events a plain thread waits on);
  // destroying the channel from outside releases its workers (false) and
  // returns, while the plain thread waits on for the post.
  void testDestroyReleasesWorkersInNotifyWait() {
    for (std::unique_ptr<EventChannel>& channel : channelOnEveryBackend(3)) {
      const std::string backend = channel->backendName();
      NotifyEvent first, second;
      std::atomic<int> released{0}, posted{0}, plainResult{-1};
      std::vector<std::unique_ptr<DispatchEvent>> waiters;
      for (NotifyEvent* notify : {&first, &first, &second}) {
        waiters.push_back(std::make_unique<DispatchEvent>([&, notify] {
          (notify->wait() ? posted : released).fetch_add(1);
        }));
        waiters.back()->setCallback([](Event&) {});
        channel->post(*waiters.back());
      }
      std::thread plain([&] { plainResult = second.wait() ? 1 : 0; });
      CPPUNIT_ASSERT_MESSAGE(backend, eventually([&] { return channel->poolStats().blocked >= 3; }));
      std::atomic<bool> destroyed{false};
      std::thread destroyer([&] {
        channel.reset();
        destroyed = true;
      });
      const bool returned = eventually([&] { return destroyed.load(); });
      if (!returned) {
        // Release the workers through another channel so that the test
        // reports instead of hanging.
        std::unique_ptr<EventChannel> rescue = evchan::test::makeChannel(1);
        rescue->post(first);
        rescue->post(second);
        destroyer.join();
        plain.join();
        CPPUNIT_FAIL(backend + ": the destructor did not return");
      }
      destroyer.join();
      CPPUNIT_ASSERT_EQUAL_MESSAGE(backend, 3, released.load());
      CPPUNIT_ASSERT_EQUAL_MESSAGE(backend, 0, posted.load());
      for (auto& w : waiters) CPPUNIT_ASSERT(!w->inFlight());
      const int early = plainResult.load();
      std::unique_ptr<EventChannel> other = evchan::test::makeChannel(1);
      other->post(second);
      plain.join();
      CPPUNIT_ASSERT_EQUAL_MESSAGE(backend + ": the plain thread left before the post", -1, early);
      CPPUNIT_ASSERT_EQUAL(1, plainResult.load());
    }
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(ChannelAdversarialTest);
