// SPDX-License-Identifier: Apache-2.0
// TcpListener at the descriptor limit: accept() reports
// too_many_files_open with the connection still queued, and
// acceptWithBackoff() waits a growing interval between tries instead of
// spinning (on a plain thread, and inside a task without holding its
// worker), then accepts once a descriptor frees.  The process's own
// RLIMIT_NOFILE is lowered to just above what is open, the rest of the
// table filled, and both restored after each test.
//
// Not under UBSan's vptr check (-fsanitize=vptr, part of
// -fsanitize=undefined): whenever its small per-process cache misses, it
// probes memory through pipe(), which fails with the table full, and it
// reports a false "invalid vptr".  Which checks miss depends on where ASLR
// put the vtables, so no warm-up before filling the table avoids it; the
// cases skip there and run in every other build (ASan alone included).
#include <cppunit/extensions/HelperMacros.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <evchan/evchan.h>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/posix/descriptor_limit.h"
#include "support/skip.h"
#include "support/waiting.h"

using namespace std::chrono_literals;

namespace {

using evchan::AcceptBackoff;
using evchan::Duration;
using evchan::TcpListener;
using evchan::TcpSocket;
using evchan::test::describe;
using evchan::test::eventually;
using evchan::test::FullDescriptorTable;
using evchan::test::skipUnderUbsanVptrCheck;

// Every wait acceptWithBackoff() announced, in order.
struct WaitLog {
  std::mutex mutex;
  std::vector<Duration> delays;
  std::vector<std::error_code> errors;
  std::atomic<int> count{0};

  AcceptBackoff backoff(Duration initial, Duration max) {
    AcceptBackoff b;
    b.initialDelay = initial;
    b.maxDelay = max;
    b.onWait = [this](const std::error_code& error, Duration delay) {
      std::lock_guard<std::mutex> lock(mutex);
      delays.push_back(delay);
      errors.push_back(error);
      ++count;
    };
    return b;
  }
};

// The waits must start at `initial` and double up to `max`: each failed
// try is followed by a longer (or the longest) pause, never an immediate
// retry.  Returns the number of waits.
std::size_t checkGrowingWaits(WaitLog& log, Duration initial, Duration max) {
  std::lock_guard<std::mutex> lock(log.mutex);
  Duration expected = initial;
  for (std::size_t i = 0; i < log.delays.size(); ++i) {
    CPPUNIT_ASSERT_MESSAGE("wait " + std::to_string(i) + ": " + describe(log.errors[i]),
                           log.errors[i] == std::errc::too_many_files_open);
    CPPUNIT_ASSERT_EQUAL_MESSAGE("wait " + std::to_string(i), expected.count(), log.delays[i].count());
    expected = std::min(expected * 2, max);
  }
  return log.delays.size();
}

// Echoes one byte through the pair, proving the accepted socket is the
// queued connection.
void checkConnected(TcpSocket& client, TcpSocket& accepted) {
  client.writeAll("x", 1);
  char byte = 0;
  accepted.readExactly(&byte, 1);
  CPPUNIT_ASSERT_EQUAL('x', byte);
}

constexpr Duration kInitial = std::chrono::milliseconds(1);
constexpr Duration kMax = std::chrono::milliseconds(16);
// Waits to watch before freeing a descriptor: past the cap, so that the
// log shows both the doubling and the ceiling.
constexpr int kWatchedWaits = 8;

}  // namespace

class AcceptBackoffTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(AcceptBackoffTest);
  CPPUNIT_TEST(testAcceptReportsTooManyFilesOpen);
  CPPUNIT_TEST(testBackoffOnThreadWaitsAndRecovers);
  CPPUNIT_TEST(testBackoffInTaskSuspendsTheTaskAndRecovers);
  CPPUNIT_TEST(testBackoffInTaskEndsAtShutdown);
  CPPUNIT_TEST(testBackoffHonoursTheListenerTimeout);
  CPPUNIT_TEST(testBadBackoffIsRefused);
  CPPUNIT_TEST_SUITE_END();

 public:
  void testAcceptReportsTooManyFilesOpen() {
    skipUnderUbsanVptrCheck();
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    TcpSocket client = TcpSocket::connect(listener.localAddress());
    std::error_code ec;
    {
      FullDescriptorTable full;
      listener.accept(ec);
      CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == std::errc::too_many_files_open);
    }
    // The connection stayed queued.
    TcpSocket accepted = listener.accept(ec);
    CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);
    checkConnected(client, accepted);
  }

  void testBackoffOnThreadWaitsAndRecovers() {
    skipUnderUbsanVptrCheck();
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    TcpSocket client = TcpSocket::connect(listener.localAddress());
    WaitLog log;
    TcpSocket accepted;
    std::error_code ec;
    std::atomic<bool> go{false};
    std::thread acceptor([&] {
      while (!go) std::this_thread::sleep_for(1ms);
      accepted = listener.acceptWithBackoff(log.backoff(kInitial, kMax), ec);
    });
    {
      FullDescriptorTable full;
      go = true;
      const bool watched = eventually([&] { return log.count.load() >= kWatchedWaits; });
      full.release();
      acceptor.join();
      CPPUNIT_ASSERT(watched);
    }
    CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);
    CPPUNIT_ASSERT(checkGrowingWaits(log, kInitial, kMax) >= kWatchedWaits);
    checkConnected(client, accepted);
  }

  void testBackoffInTaskSuspendsTheTaskAndRecovers() {
    skipUnderUbsanVptrCheck();
    // One worker, no spare threads: if the back-off held the worker, the
    // second task could not run until the accept was done.
    evchan::EventChannel::Options options;
    options.initialThreads = 1;
    options.maxThreads = 1;
    options.stuckWorkerGrace = Duration::zero();
    std::unique_ptr<evchan::EventChannel> channel = evchan::test::createOrSkip(options);
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    TcpSocket client = TcpSocket::connect(listener.localAddress());
    WaitLog log;
    TcpSocket accepted;
    std::error_code ec;
    std::atomic<int> waitsWhenOtherRan{-1};
    {
      FullDescriptorTable full;
      evchan::TaskHandle acceptor =
          channel->spawn([&] { accepted = listener.acceptWithBackoff(log.backoff(kInitial, kMax), ec); });
      CPPUNIT_ASSERT(eventually([&] { return log.count.load() >= 2; }));
      evchan::TaskHandle other = channel->spawn([&] { waitsWhenOtherRan = log.count.load(); });
      evchan::test::joinWithin(other);
      // At least one wait after the other task's run, however late it ran.
      const bool watched = eventually([&] {
        return log.count.load() >= std::max(kWatchedWaits, waitsWhenOtherRan.load() + 1);
      });
      full.release();
      evchan::test::joinWithin(acceptor);
      CPPUNIT_ASSERT(watched);
    }
    CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);
    // The other task ran while the acceptor was still backing off.
    CPPUNIT_ASSERT(waitsWhenOtherRan.load() >= 2);
    CPPUNIT_ASSERT(waitsWhenOtherRan.load() < log.count.load());
    CPPUNIT_ASSERT(checkGrowingWaits(log, kInitial, kMax) >= kWatchedWaits);
    checkConnected(client, accepted);
    channel->shutdown();
  }

  void testBackoffInTaskEndsAtShutdown() {
    skipUnderUbsanVptrCheck();
    std::unique_ptr<evchan::EventChannel> channel = evchan::test::makeChannel(1);
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    TcpSocket client = TcpSocket::connect(listener.localAddress());
    WaitLog log;
    std::error_code ec;
    {
      FullDescriptorTable full;
      // Long waits: the shutdown must end one early, not after it.
      evchan::TaskHandle acceptor = channel->spawn([&] { listener.acceptWithBackoff(log.backoff(1h, 1h), ec); });
      CPPUNIT_ASSERT(eventually([&] { return log.count.load() >= 1; }));
      // The task now sleeps an hour; the slot freed is for the threads
      // shutdown() may start, not for another try.
      full.release();
      channel->shutdown();
      evchan::test::joinWithin(acceptor);
    }
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == std::errc::operation_canceled);
    CPPUNIT_ASSERT_EQUAL(1, log.count.load());
  }

  void testBackoffHonoursTheListenerTimeout() {
    skipUnderUbsanVptrCheck();
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    TcpSocket client = TcpSocket::connect(listener.localAddress());
    listener.setTimeout(50ms);
    WaitLog log;
    std::error_code ec;
    {
      FullDescriptorTable full;
      listener.acceptWithBackoff(log.backoff(kInitial, kMax), ec);
    }
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == std::errc::timed_out);
    // Paced: 50 ms of 1, 2, 4, 8, 16, 16 ... ms waits is a handful of tries.
    CPPUNIT_ASSERT(log.count.load() >= 1);
    CPPUNIT_ASSERT(log.count.load() <= 8);
  }

  void testBadBackoffIsRefused() {
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    std::error_code ec;
    AcceptBackoff zero;
    zero.initialDelay = Duration::zero();
    listener.acceptWithBackoff(zero, ec);
    CPPUNIT_ASSERT(ec == std::errc::invalid_argument);
    AcceptBackoff inverted;
    inverted.initialDelay = 10ms;
    inverted.maxDelay = 1ms;
    listener.acceptWithBackoff(inverted, ec);
    CPPUNIT_ASSERT(ec == std::errc::invalid_argument);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(AcceptBackoffTest);
