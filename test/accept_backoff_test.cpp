// SPDX-License-Identifier: Apache-2.0
// TcpListener at the descriptor limit: accept() reports
// too_many_files_open with the connection still queued, and
// acceptWithBackoff() waits a growing interval between tries instead of
// spinning (on a plain thread, and inside a task without holding its
// worker), then accepts once a descriptor frees.  The process's own
// RLIMIT_NOFILE is lowered to just above what is open, the rest of the
// table filled, and both restored after each test.
#include <cppunit/extensions/HelperMacros.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <evchan/evchan.h>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/waiting.h"

using namespace std::chrono_literals;

namespace {

using evchan::AcceptBackoff;
using evchan::Duration;
using evchan::TcpListener;
using evchan::TcpSocket;
using evchan::test::describe;
using evchan::test::eventually;

// Fills the descriptor table: lowers the soft RLIMIT_NOFILE to a few above
// the highest open descriptor and opens /dev/null until EMFILE.  release()
// frees one slot; the destructor closes the rest and restores the limit.
class FullDescriptorTable {
 public:
  FullDescriptorTable() {
    CPPUNIT_ASSERT(getrlimit(RLIMIT_NOFILE, &saved_) == 0);
    const int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CPPUNIT_ASSERT(probe >= 0);
    close(probe);
    int highest = probe;
    for (int fd = probe; fd < probe + 4096; ++fd) {
      if (fcntl(fd, F_GETFD) != -1) highest = fd;
    }
    rlimit lowered = saved_;
    lowered.rlim_cur = static_cast<rlim_t>(highest + 8);
    CPPUNIT_ASSERT(setrlimit(RLIMIT_NOFILE, &lowered) == 0);
    for (;;) {
      const int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        CPPUNIT_ASSERT_EQUAL(EMFILE, errno);
        break;
      }
      fillers_.push_back(fd);
    }
    CPPUNIT_ASSERT(!fillers_.empty());
  }
  ~FullDescriptorTable() {
    for (int fd : fillers_) close(fd);
    setrlimit(RLIMIT_NOFILE, &saved_);
  }
  // Frees three slots: one for the accepted socket, two for the pipe
  // UBSan's vptr check may open (see meetTypesBeforeTheTableIsFull()).
  void release() {
    for (int i = 0; i < 3 && !fillers_.empty(); ++i) {
      close(fillers_.back());
      fillers_.pop_back();
    }
  }

 private:
  rlimit saved_{};
  std::vector<int> fillers_;
};

// UBSan's vptr check, the first time it meets an object's dynamic type,
// probes the object's memory through a pipe(); with the table full that
// fails and it reports a bogus "invalid vptr".  So every error category
// the full-table code compares or prints, and the accept path itself (on
// `channel`, when given), is met once before the table is filled.
// Spawns `function` as a std::function<void()>.  UBSan checks a task
// function's dynamic type the first time it runs one of that type, through
// a pipe it cannot open once the table is full ("invalid vptr"); spawn()
// of a lambda makes a type per lambda, spawn() of a std::function always
// the same one, which meetTypesBeforeTheTableIsFull() runs first.
evchan::TaskHandle spawnMet(evchan::EventChannel& channel, std::function<void()> function) {
  return channel.spawn(std::move(function));
}

void meetTypesBeforeTheTableIsFull(TcpListener& listener, evchan::EventChannel* channel) {
  const std::error_code samples[] = {evchan::makeAprError(EMFILE), std::make_error_code(std::errc::timed_out),
                                     std::error_code(EMFILE, std::system_category()),
                                     make_error_code(evchan::Errc::not_open), std::error_code()};
  for (const std::error_code& sample : samples) {
    (void)(sample == std::errc::too_many_files_open);
    (void)(sample == std::errc::operation_canceled);
    (void)(sample == evchan::Errc::end_of_stream);
    (void)describe(sample);
  }
  auto acceptOne = [&listener] {
    TcpSocket client = TcpSocket::connect(listener.localAddress());
    TcpSocket accepted = listener.acceptWithBackoff();
    std::error_code ec;
    listener.setTimeout(Duration::zero());
    listener.acceptWithBackoff(AcceptBackoff(), ec);  // timed_out
    listener.setTimeout(evchan::kInfiniteTimeout);
  };
  acceptOne();
  // Tasks started while the table is full are spawned through a
  // std::function (see spawnMet()): one task function type, met here.
  if (channel != nullptr) spawnMet(*channel, acceptOne).join();
}

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
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    meetTypesBeforeTheTableIsFull(listener, nullptr);
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
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    meetTypesBeforeTheTableIsFull(listener, nullptr);
    TcpSocket client = TcpSocket::connect(listener.localAddress());
    WaitLog log;
    TcpSocket accepted;
    std::error_code ec;
    std::atomic<bool> go{false};
    // Started before the table fills (see meetTypesBeforeTheTableIsFull()).
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
    // One worker, no spare threads: if the back-off held the worker, the
    // second task could not run until the accept was done.
    evchan::EventChannel::Options options;
    options.initialThreads = 1;
    options.maxThreads = 1;
    options.stuckWorkerGrace = Duration::zero();
    std::unique_ptr<evchan::EventChannel> channel = evchan::test::createOrSkip(options);
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    meetTypesBeforeTheTableIsFull(listener, channel.get());
    TcpSocket client = TcpSocket::connect(listener.localAddress());
    WaitLog log;
    TcpSocket accepted;
    std::error_code ec;
    std::atomic<int> waitsWhenOtherRan{-1};
    {
      FullDescriptorTable full;
      evchan::TaskHandle acceptor =
          spawnMet(*channel, [&] { accepted = listener.acceptWithBackoff(log.backoff(kInitial, kMax), ec); });
      CPPUNIT_ASSERT(eventually([&] { return log.count.load() >= 2; }));
      evchan::TaskHandle other = spawnMet(*channel, [&] { waitsWhenOtherRan = log.count.load(); });
      evchan::test::joinWithin(other);
      const bool watched = eventually([&] { return log.count.load() >= kWatchedWaits; });
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
    std::unique_ptr<evchan::EventChannel> channel = evchan::test::makeChannel(1);
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    meetTypesBeforeTheTableIsFull(listener, channel.get());
    TcpSocket client = TcpSocket::connect(listener.localAddress());
    WaitLog log;
    std::error_code ec;
    {
      FullDescriptorTable full;
      // Long waits: the shutdown must end one early, not after it.
      evchan::TaskHandle acceptor = spawnMet(*channel, [&] { listener.acceptWithBackoff(log.backoff(1h, 1h), ec); });
      CPPUNIT_ASSERT(eventually([&] { return log.count.load() >= 1; }));
      // The task now sleeps an hour; the slots freed are for the threads
      // shutdown() may start (and UBSan's pipe), not for another try.
      full.release();
      channel->shutdown();
      evchan::test::joinWithin(acceptor);
    }
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == std::errc::operation_canceled);
    CPPUNIT_ASSERT_EQUAL(1, log.count.load());
  }

  void testBackoffHonoursTheListenerTimeout() {
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    meetTypesBeforeTheTableIsFull(listener, nullptr);
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
