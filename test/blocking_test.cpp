// SPDX-License-Identifier: Apache-2.0
// Tests of evchan::blocking() and of the stuck-worker monitor: tasks stuck
// in a real blocking read of a pipe (read(2); Windows: _read) must not stop the others, with the
// wrapper (compensated at once) or without it (after the grace period);
// the cap holds; an idle channel does not grow.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/diagnostics.h"
#include "support/host_pipe.h"
#include "support/leak_checked_fixture.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::Duration;
using evchan::EventChannel;
using evchan::TaskHandle;
using evchan::ThreadPoolStats;
using evchan::test::Clock;
namespace this_task = evchan::this_task;

// Every wait is bounded: a stuck test fails after kPatience.
constexpr Duration kPatience = 8s;
using evchan::test::eventually;
using evchan::test::joinWithin;

std::string describe(const ThreadPoolStats& s) {
  return "current " + std::to_string(s.current) + ", peak " + std::to_string(s.peak) + ", idle " +
         std::to_string(s.idle) + ", blocked " + std::to_string(s.blocked) + ", initial " +
         std::to_string(s.initial) + ", max " + std::to_string(s.maxThreads) + ", started " +
         std::to_string(s.started) + " (initial " + std::to_string(s.startedInitial) + ", blocking calls " +
         std::to_string(s.startedForBlockingCalls) + ", presumed stuck " + std::to_string(s.startedForPresumedStuck) +
         ", growth " + std::to_string(s.startedForGrowth) + "), exited " + std::to_string(s.exited) +
         ", runnable past grace " + std::to_string(s.runnablePastGrace);
}

std::unique_ptr<EventChannel> makeChannel(int initialThreads, int maxThreads, Duration grace) {
  EventChannel::Options options;
  options.initialThreads = initialThreads;
  options.maxThreads = maxThreads;
  options.stuckWorkerGrace = grace;
  return EventChannel::create(options);
}

/// Pipes nobody writes to until the test says so.  Declare them before the
/// channel (the read ends outlive the pool) and a WriteEndsClosedOnExit
/// after it: whatever happens, a reader stuck in read() gets EOF before the
/// channel's destructor waits for its workers.
struct Pipes {
  explicit Pipes(int count) : fds(count) {
    for (Fds& pipe : fds) {
      int both[2];
      CPPUNIT_ASSERT(evchan::test::makeHostPipe(both));
      pipe.read = both[0];
      pipe.write = both[1];
    }
  }
  ~Pipes() {
    closeWriteEnds();
    for (Fds& pipe : fds) evchan::test::closeHostPipe(pipe.read);
  }
  Pipes(const Pipes&) = delete;
  Pipes& operator=(const Pipes&) = delete;

  void writeAll(const std::string& text) {
    for (Fds& pipe : fds) {
      CPPUNIT_ASSERT_EQUAL(static_cast<long>(text.size()), evchan::test::writeHostPipe(pipe.write, text.data(), text.size()));
    }
  }
  void closeWriteEnds() {
    for (Fds& pipe : fds) {
      if (pipe.write >= 0) evchan::test::closeHostPipe(pipe.write);
      pipe.write = -1;
    }
  }
  int readEnd(int i) const { return fds[i].read; }

  struct Fds {
    int read = -1;
    int write = -1;
  };
  std::vector<Fds> fds;
};

struct WriteEndsClosedOnExit {
  Pipes& pipes;
  ~WriteEndsClosedOnExit() { pipes.closeWriteEnds(); }
};

/// What the reading tasks saw.
struct Readers {
  explicit Readers(int count) : bytes(count), text(count) {
    for (auto& b : bytes) b = -2;
  }
  std::atomic<int> entered{0};
  std::vector<std::atomic<long>> bytes;  // -2: not returned yet
  std::vector<std::string> text;
  std::vector<TaskHandle> tasks;

  /// Spawns one task per pipe that reads it, through evchan::blocking() or not.
  void spawn(EventChannel& channel, Pipes& pipes, bool wrapped) {
    for (int i = 0; i < static_cast<int>(bytes.size()); ++i) {
      tasks.push_back(channel.spawn([this, &pipes, wrapped, i] {
        char buffer[16];
        const auto readIt = [&] { return evchan::test::readHostPipe(pipes.readEnd(i), buffer, sizeof buffer); };
        ++entered;
        const long n = wrapped ? evchan::blocking(readIt) : readIt();
        if (n > 0) text[i].assign(buffer, static_cast<std::size_t>(n));
        bytes[i] = n;
      }));
    }
  }
  int returned() const {
    int count = 0;
    for (const auto& b : bytes) count += b.load() != -2 ? 1 : 0;
    return count;
  }
};

/// Spawns `count` tasks that sleep, yield and count themselves done.
std::vector<TaskHandle> spawnWorkers(EventChannel& channel, int count, std::atomic<int>& done) {
  std::vector<TaskHandle> tasks;
  for (int i = 0; i < count; ++i) {
    tasks.push_back(channel.spawn([&done] {
      this_task::sleepFor(1ms);
      this_task::yield();
      ++done;
    }));
  }
  return tasks;
}

}  // namespace

class BlockingTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(BlockingTest);
  CPPUNIT_TEST(testBlockingReadsDoNotStopOtherTasks);
  CPPUNIT_TEST(testUnwrappedBlockingReadsAreCompensatedByTheMonitor);
  CPPUNIT_TEST(testBlockingRespectsMaxThreads);
  CPPUNIT_TEST(testBlockingOutsideAWorkerIsAPlainCall);
  CPPUNIT_TEST(testExceptionInsideATaskLeavesTheBlockedCount);
  CPPUNIT_TEST(testIdleChannelDoesNotGrow);
  CPPUNIT_TEST(testNegativeGraceIsInvalid);
  CPPUNIT_TEST_SUITE_END();

 public:
  // (a) Two workers, two tasks in evchan::blocking(read()): the pool
  // compensates at once.  The monitor is off, so the wrapper alone does it.
  void testBlockingReadsDoNotStopOtherTasks() { readersDoNotStopOthers(true, Duration::zero()); }

  // (b) The same without the wrapper: the monitor notices the two workers
  // stuck past the grace period and starts spare threads.
  void testUnwrappedBlockingReadsAreCompensatedByTheMonitor() { readersDoNotStopOthers(false, 5ms); }

  // (c) At the cap, stuck readers hold every thread and the rest waits.
  void testBlockingRespectsMaxThreads() {
    constexpr int kReaders = 5;
    Pipes pipes(kReaders);
    Readers readers(kReaders);
    std::unique_ptr<EventChannel> channel = makeChannel(2, 3, 5ms);
    WriteEndsClosedOnExit unblock{pipes};
    readers.spawn(*channel, pipes, true);
    CPPUNIT_ASSERT_MESSAGE(describe(channel->poolStats()),
                           eventually([&] { return channel->poolStats().blocked == 3; }));
    std::this_thread::sleep_for(100ms);  // room for an over-eager pool (or monitor) to start a fourth
    const ThreadPoolStats s = channel->poolStats();
    CPPUNIT_ASSERT_MESSAGE(describe(s), s.current == 3 && s.peak == 3 && s.blocked == 3);
    CPPUNIT_ASSERT_EQUAL(3, readers.entered.load());
    CPPUNIT_ASSERT_EQUAL(0, readers.returned());

    pipes.writeAll("data");
    for (TaskHandle& task : readers.tasks) joinWithin(task);
    for (int i = 0; i < kReaders; ++i) {
      CPPUNIT_ASSERT_EQUAL(long{4}, readers.bytes[i].load());
      CPPUNIT_ASSERT_EQUAL(std::string("data"), readers.text[i]);
    }
    CPPUNIT_ASSERT_MESSAGE(describe(channel->poolStats()), channel->poolStats().peak <= 3);
    CPPUNIT_ASSERT_MESSAGE(describe(channel->poolStats()),
                           eventually([&] { return channel->poolStats().blocked == 0; }));
  }

  // (d) Not on a worker: a plain call.  Values, references and void come
  // back; exceptions go through.
  void testBlockingOutsideAWorkerIsAPlainCall() {
    CPPUNIT_ASSERT_EQUAL(42, evchan::blocking([] { return 42; }));
    int target = 0;
    int& ref = evchan::blocking([&]() -> int& { return target; });
    CPPUNIT_ASSERT(&ref == &target);
    bool ran = false;
    evchan::blocking([&] { ran = true; });
    CPPUNIT_ASSERT(ran);
    std::string moved = evchan::blocking([] { return std::string("moved out"); });
    CPPUNIT_ASSERT_EQUAL(std::string("moved out"), moved);
    try {
      evchan::blocking([]() -> int { throw std::runtime_error("from fn"); });
      CPPUNIT_FAIL("the exception did not propagate");
    } catch (const std::runtime_error& e) {
      CPPUNIT_ASSERT_EQUAL(std::string("from fn"), std::string(e.what()));
    }
    // A channel on the side is not affected by calls on this thread.
    std::unique_ptr<EventChannel> channel = makeChannel(1, 0, 5ms);
    evchan::blocking([] { std::this_thread::sleep_for(20ms); });
    CPPUNIT_ASSERT_EQUAL(0, channel->poolStats().blocked);
  }

  // An exception out of fn inside a task: it reaches the task, and the
  // worker no longer counts as blocked (the guard left).
  void testExceptionInsideATaskLeavesTheBlockedCount() {
    std::atomic<bool> caught{false};
    std::atomic<int> blockedInside{-1};
    std::unique_ptr<EventChannel> channel = makeChannel(1, 0, Duration::zero());
    EventChannel* ch = channel.get();
    TaskHandle task = channel->spawn([&] {
      try {
        evchan::blocking([&]() -> int {
          blockedInside = ch->poolStats().blocked;
          throw std::runtime_error("inside");
        });
      } catch (const std::runtime_error&) {
        caught = true;
      }
    });
    joinWithin(task);
    CPPUNIT_ASSERT(caught.load());
    CPPUNIT_ASSERT_EQUAL(1, blockedInside.load());
    CPPUNIT_ASSERT_MESSAGE(describe(channel->poolStats()),
                           eventually([&] { return channel->poolStats().blocked == 0; }));
  }

  // (e) The monitor starts no thread without work: after a second of
  // idling, only the initial workers were ever started.
  void testIdleChannelDoesNotGrow() {
    std::unique_ptr<EventChannel> channel = makeChannel(2, 0, 5ms);
    std::this_thread::sleep_for(1s);
    const ThreadPoolStats s = channel->poolStats();
    CPPUNIT_ASSERT_MESSAGE(describe(s), s.started == 2 && s.current == 2 && s.peak == 2 && s.blocked == 0);
  }

  void testNegativeGraceIsInvalid() {
    EventChannel::Options options;
    options.initialThreads = 1;
    options.stuckWorkerGrace = -1ms;
    std::error_code ec;
    CPPUNIT_ASSERT(EventChannel::create(options, ec) == nullptr);
    CPPUNIT_ASSERT(ec == std::errc::invalid_argument);
  }

 private:
  void readersDoNotStopOthers(bool wrapped, Duration grace) {
    constexpr int kReaders = 2;
    constexpr int kOthers = 20;
    Pipes pipes(kReaders);
    Readers readers(kReaders);
    std::atomic<int> othersDone{0};
    std::unique_ptr<EventChannel> channel = makeChannel(kReaders, 0, grace);
    WriteEndsClosedOnExit unblock{pipes};
    readers.spawn(*channel, pipes, wrapped);
    // Both workers are inside read() (or about to be: counted as blocked
    // only once inside the wrapper, or once the monitor noticed).
    CPPUNIT_ASSERT(eventually([&] { return readers.entered.load() == kReaders; }));
    if (wrapped) {
      CPPUNIT_ASSERT_MESSAGE(describe(channel->poolStats()),
                             eventually([&] { return channel->poolStats().blocked == kReaders; }));
    }
    std::vector<TaskHandle> others = spawnWorkers(*channel, kOthers, othersDone);
    const Duration patience = wrapped ? kPatience : Duration(2s);
    const Clock::duration took = evchan::test::timed(
        [&] { eventually([&] { return othersDone.load() == kOthers; }, patience); });
    CPPUNIT_ASSERT_MESSAGE("other tasks stalled behind the stuck readers: " + std::to_string(othersDone.load()) +
                               " of " + std::to_string(kOthers) + " done after " + evchan::test::elapsedText(took) +
                               "; " + describe(channel->poolStats()),
                           othersDone.load() == kOthers);
    for (TaskHandle& task : others) joinWithin(task);
    CPPUNIT_ASSERT_EQUAL_MESSAGE("a reader returned without data", 0, readers.returned());
    // Wrapped, both count as blocked; unwrapped, the monitor presumes blocked
    // those it found stuck while work waited (at least the first).
    const ThreadPoolStats stuck = channel->poolStats();
    CPPUNIT_ASSERT_MESSAGE(describe(stuck), wrapped ? stuck.blocked == kReaders
                                                    : stuck.blocked >= 1 && stuck.blocked <= kReaders);
    CPPUNIT_ASSERT_MESSAGE(describe(stuck), stuck.peak > kReaders);
    // Why the spares started: the wrapper told the pool at once; unwrapped,
    // the monitor found the readers asleep in the kernel (on Linux from
    // their /proc state; elsewhere from the grace period alone).
    CPPUNIT_ASSERT_MESSAGE(describe(stuck), stuck.startedInitial == kReaders);
    CPPUNIT_ASSERT_MESSAGE(describe(stuck), wrapped ? stuck.startedForBlockingCalls >= 1 &&
                                                          stuck.startedForPresumedStuck == 0
                                                    : stuck.startedForPresumedStuck >= 1 &&
                                                          stuck.startedForBlockingCalls == 0);
    CPPUNIT_ASSERT_MESSAGE(describe(stuck), stuck.started == stuck.startedInitial + stuck.startedForBlockingCalls +
                                                                 stuck.startedForPresumedStuck + stuck.startedForGrowth);

    pipes.writeAll("hello");
    for (TaskHandle& task : readers.tasks) joinWithin(task);
    for (int i = 0; i < kReaders; ++i) {
      CPPUNIT_ASSERT_EQUAL(long{5}, readers.bytes[i].load());
      CPPUNIT_ASSERT_EQUAL(std::string("hello"), readers.text[i]);
    }
    CPPUNIT_ASSERT_MESSAGE(describe(channel->poolStats()),
                           eventually([&] { return channel->poolStats().blocked == 0; }));
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(BlockingTest);
