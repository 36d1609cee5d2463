// SPDX-License-Identifier: Apache-2.0
// Blocking-looking socket calls inside tasks: TcpSocket connect, readSome,
// readExactly, writeAll and TcpListener accept suspend the calling task
// (not its worker thread) until the socket is ready, their timeouts race a
// timer, and their errors are those of the same calls on a plain thread.
// Everything runs on real loopback connections.
#include <cppunit/extensions/HelperMacros.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <evchan/evchan.h>

#include "support/diagnostics.h"
#include "support/default_sigpipe.h"
#include "support/host_behaviour.h"
#include "support/host_socket.h"
#include "support/leak_checked_fixture.h"
#include "support/waiting.h"
#include "support/loopback.h"
#include "support/skip.h"

namespace {

using namespace std::chrono_literals;
using evchan::Duration;
using evchan::Errc;
using evchan::EventChannel;
using evchan::SystemError;
using evchan::TaskHandle;
using evchan::TcpListener;
using evchan::TcpSocket;
using evchan::test::generous;
using evchan::test::Clock;
using evchan::test::ConnectedPair;
using evchan::test::connectPair;
using evchan::test::describe;
using evchan::test::elapsedText;
using evchan::test::timed;
using evchan::test::finishesWithin;
using evchan::test::DefaultSigpipe;
using evchan::test::RefusingPort;
namespace this_task = evchan::this_task;

// Bounded waits everywhere: a task that never ends fails its test after
// kPatience; every socket gets kSocketTimeout, so no call waits forever.
// That is a hang's guard, not a speed, so it is stretched by the slowdown
// factor like the patience: under Wine (factor 3) a client of the
// many-connections echo was seen waiting up to 12 s at times (WSAPoll and
// the wineserver catching up with 250 sockets; the build before this
// change too), and a 5 s timeout failed about 1 run in 10.
constexpr Duration kPatience = 8s;
using evchan::test::eventually;
using evchan::test::joinWithin;
using evchan::test::makeChannelWithoutMonitor;
using evchan::test::makeChannel;
const Duration kSocketTimeout = generous(10s);

/// Spins a task (yielding) until `condition` holds or kPatience passes.
bool yieldUntil(const std::function<bool()>& condition) {
  const Clock::time_point deadline = Clock::now() + kPatience;
  while (!condition()) {
    if (Clock::now() > deadline) return false;
    this_task::yield();
  }
  return true;
}

void setTimeouts(ConnectedPair& pair, Duration timeout = kSocketTimeout) {
  pair.client.setTimeout(timeout);
  pair.server.setTimeout(timeout);
}

/// Where a scenario runs: inside a task on a channel, or on a plain thread.
enum class Where { InTask, OnThread };

std::string whereText(Where where) { return where == Where::InTask ? "in a task: " : "on a thread: "; }

/// Runs `scenario` inside a task of `channel` or on a plain thread.  If it
/// has not finished within `limit`, runs `release` (which must unblock it)
/// before joining.  Rethrows the scenario's failure; true when it finished
/// on its own.
bool runBounded(Where where, EventChannel* channel, const std::function<void()>& scenario,
                Duration limit = kPatience, const std::function<void()>& release = [] {}) {
  if (where == Where::InTask) {
    TaskHandle task = channel->spawn([scenario] {
      CPPUNIT_ASSERT_MESSAGE("the scenario did not run in a task", evchan::inTask());
      scenario();
    });
    const bool finished = eventually([&] { return task.done(); }, limit);
    if (!finished) release();
    joinWithin(task);
    return finished;
  }
  return finishesWithin(
      limit,
      [&scenario] {
        CPPUNIT_ASSERT(!evchan::inTask());
        scenario();
      },
      release);
}

// ------------------------------------------------------------ SIGPIPE
/// Asserts that SIGPIPE would kill the process if the calling thread
/// raised it: default disposition, not blocked on this thread (Windows
/// has no SIGPIPE: nothing to assert there).
void assertSigpipeIsDeadly() {
  CPPUNIT_ASSERT_EQUAL(std::string(), DefaultSigpipe::whatKeepsSigpipeHarmless());
}

// ------------------------------------------------------------ patterns
/// The expected checksum of `size` pattern bytes starting at stream `offset`.
std::uint64_t patternChecksum(std::size_t size, std::uint64_t offset) {
  std::vector<unsigned char> bytes(size);
  evchan::test::fillPattern(bytes.data(), size, offset);
  return evchan::test::checksum(evchan::test::kChecksumSeed, bytes.data(), size);
}

}  // namespace

/// Asserts that the std::error_code `ec` equals `expected`: an evchan::Errc
/// (same code) or a std::errc (same portable condition).

class TaskSocketTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(TaskSocketTest);
  CPPUNIT_TEST(testCallsSuspendTheTaskNotTheThread);
  CPPUNIT_TEST(testEchoThousandConnectionsTasksOnBothSides);
  CPPUNIT_TEST(testEightMiBInOneCallInsideTasks);
  CPPUNIT_TEST(testReadsOfWaitingBytesDoNotSuspendTheTask);
  CPPUNIT_TEST(testReadTimeoutInTask);
  CPPUNIT_TEST(testReadTimeoutOnThread);
  CPPUNIT_TEST(testAcceptTimeoutInTask);
  CPPUNIT_TEST(testAcceptTimeoutOnThread);
  CPPUNIT_TEST(testConnectTimeoutInTask);
  CPPUNIT_TEST(testConnectTimeoutOnThread);
  CPPUNIT_TEST(testZeroTimeoutInTask);
  CPPUNIT_TEST(testZeroTimeoutOnThread);
  CPPUNIT_TEST(testConnectRefusedInTask);
  CPPUNIT_TEST(testConnectRefusedOnThread);
  CPPUNIT_TEST(testEndOfStreamInTask);
  CPPUNIT_TEST(testEndOfStreamOnThread);
  CPPUNIT_TEST(testPeerResetInTask);
  CPPUNIT_TEST(testPeerResetOnThread);
  CPPUNIT_TEST(testWriteToClosedPeerInTaskDoesNotRaiseSigpipe);
  CPPUNIT_TEST(testWriteToClosedPeerOnThreadDoesNotRaiseSigpipe);
  CPPUNIT_TEST(testSameSocketOnThreadsAndInTasks);
  CPPUNIT_TEST(testSocketMovesBetweenChannelsOfTasks);
  CPPUNIT_TEST_SUITE_END();

 public:
  // ---------------------------------------------------------- suspension
  // One worker, K tasks each waiting in readSome on its own idle
  // connection: if a wait held the thread, nothing else could run.  A
  // fifth task meanwhile yields 100 times and plays ping-pong over another
  // connection with a sixth; then a plain thread writes to every
  // connection and each reader gets its own bytes.  The pool never needed
  // a second thread.
  void testCallsSuspendTheTaskNotTheThread() {
    constexpr int kReaders = 50;
    constexpr int kYields = 100;
    constexpr int kRoundTrips = 20;
    std::vector<ConnectedPair> pairs;
    for (int i = 0; i < kReaders; ++i) {
      pairs.push_back(connectPair());
      setTimeouts(pairs.back());
    }
    ConnectedPair ping = connectPair();
    setTimeouts(ping);
    auto message = [](int i) { return "reader-" + std::to_string(i) + "-data"; };
    std::vector<std::string> received(kReaders);
    std::vector<std::error_code> errors(kReaders);
    std::atomic<int> readersWaiting{0}, readersDone{0}, yields{0}, roundTrips{0}, doneBeforeBusyEnded{-1};
    std::atomic<bool> busyFinished{false};
    std::mutex threadsMutex;
    std::vector<std::thread::id> threads;
    auto noteThread = [&] {
      std::lock_guard<std::mutex> lock(threadsMutex);
      threads.push_back(evchan::currentThreadId());
    };

    std::unique_ptr<EventChannel> channel = makeChannelWithoutMonitor(1);
    std::vector<TaskHandle> readers;
    for (int i = 0; i < kReaders; ++i) {
      readers.push_back(channel->spawn([&, i] {
        noteThread();
        const std::string expected = message(i);
        char buffer[64];
        ++readersWaiting;
        std::size_t n = pairs[i].client.readSome(buffer, sizeof buffer, errors[i]);
        // One small write arrives in one piece on loopback; should it not,
        // the rest is read too.
        if (!errors[i] && n < expected.size())
          n += pairs[i].client.readExactly(buffer + n, expected.size() - n, errors[i]);
        received[i].assign(buffer, n);
        noteThread();
        ++readersDone;
      }));
    }
    TaskHandle echo = channel->spawn([&] {
      noteThread();
      char buffer[16];
      for (int i = 0; i < kRoundTrips; ++i) {
        ping.server.readExactly(buffer, 4);
        ping.server.writeAll(buffer, 4);
      }
    });
    TaskHandle busy = channel->spawn([&] {
      noteThread();
      CPPUNIT_ASSERT(yieldUntil([&] { return readersWaiting.load() == kReaders; }));
      for (int i = 0; i < kYields; ++i) {
        this_task::yield();
        ++yields;
      }
      char buffer[4];
      for (int i = 0; i < kRoundTrips; ++i) {
        ping.client.writeAll("ping", 4);
        ping.client.readExactly(buffer, 4);
        if (std::string(buffer, 4) == "ping") ++roundTrips;
      }
      doneBeforeBusyEnded = readersDone.load();
      busyFinished = true;
    });
    joinWithin(busy);
    joinWithin(echo);
    CPPUNIT_ASSERT_EQUAL(kYields, yields.load());
    CPPUNIT_ASSERT_EQUAL(kRoundTrips, roundTrips.load());
    CPPUNIT_ASSERT_EQUAL_MESSAGE("a reader finished without data", 0, doneBeforeBusyEnded.load());
    CPPUNIT_ASSERT_EQUAL(0, readersDone.load());

    // Only now the data: from this plain thread, one connection after another.
    for (int i = 0; i < kReaders; ++i) {
      const std::string text = message(i);
      pairs[i].server.writeAll(text.data(), text.size());
    }
    for (TaskHandle& reader : readers) joinWithin(reader);
    for (int i = 0; i < kReaders; ++i) {
      ASSERT_NO_ERROR(errors[i]);
      CPPUNIT_ASSERT_EQUAL(message(i), received[i]);
    }
    const evchan::ThreadPoolStats stats = channel->poolStats();
    CPPUNIT_ASSERT_EQUAL_MESSAGE("a second thread ran: a wait blocked the worker", 1, stats.peak);
    CPPUNIT_ASSERT_EQUAL(std::uint64_t(1), stats.started);
    CPPUNIT_ASSERT_EQUAL(0, stats.blocked);
    std::lock_guard<std::mutex> lock(threadsMutex);
    for (const std::thread::id& thread : threads) CPPUNIT_ASSERT(thread == threads.front());
    channel.reset();
  }

  // ---------------------------------------------------------- echo
  // 1,000 connections, tasks on both sides: an acceptor task starts one
  // echo task per connection; each client task connects, writes 16 KiB of
  // its own pattern in 1 KiB chunks, reads the echo back and checks it.
  // On apr_pollset, as many as the host's pollset takes in reasonable time
  // (aprPollsetEchoConnections(): fewer on Windows' WSAPoll).
  void testEchoThousandConnectionsTasksOnBothSides() {
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    // EVCHAN_BACKEND=select: 2,000 descriptors are beyond FD_SETSIZE.
    if (std::string(channel->backendName()) == "select")
      EVCHAN_SKIP("select watches descriptors below FD_SETSIZE only");
    const int kConnections = std::string(channel->backendName()) == "apr_pollset"
                                 ? evchan::test::aprPollsetEchoConnections()
                                 : 1000;
    constexpr std::size_t kBytes = 16 * 1024;
    constexpr std::size_t kChunk = 1024;
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0}, 1024);
    listener.setTimeout(kSocketTimeout);
    const int port = listener.port();
    std::atomic<int> accepted{0}, echoed{0}, verified{0}, serverFailures{0};
    std::mutex failureMutex;
    std::string firstFailure;
    auto fail = [&](const std::string& what) {
      std::lock_guard<std::mutex> lock(failureMutex);
      if (firstFailure.empty()) firstFailure = what;
    };

    EventChannel* ch = channel.get();
    TaskHandle acceptor = channel->spawn([&] {
      std::vector<TaskHandle> connections;
      for (int i = 0; i < kConnections; ++i) {
        std::error_code ec;
        auto socket = std::make_shared<TcpSocket>(listener.accept(ec));
        if (ec) {
          ++serverFailures;
          fail("accept: " + describe(ec));
          break;
        }
        ++accepted;
        socket->setTimeout(kSocketTimeout);
        connections.push_back(ch->spawn([&, socket] {
          std::vector<char> buffer(4096);
          std::error_code error;
          for (;;) {
            const std::size_t n = socket->readSome(buffer.data(), buffer.size(), error);
            if (error) break;
            socket->writeAll(buffer.data(), n, error);
            if (error) break;
          }
          if (error == Errc::end_of_stream) {
            ++echoed;
          } else {
            ++serverFailures;
            fail("echo: " + describe(error));
          }
        }));
      }
      for (TaskHandle& connection : connections) connection.join();
    });
    std::vector<TaskHandle> clients;
    clients.reserve(kConnections);
    for (int i = 0; i < kConnections; ++i) {
      clients.push_back(channel->spawn([&, i] {
        const std::uint64_t offset = static_cast<std::uint64_t>(i) * 7919;  // each its own bytes
        std::error_code ec;
        TcpSocket socket = TcpSocket::connect({"127.0.0.1", port}, kSocketTimeout, ec);
        if (ec) return fail("connect: " + describe(ec));
        socket.setTimeout(kSocketTimeout);
        std::vector<unsigned char> out(kBytes), in(kBytes);
        evchan::test::fillPattern(out.data(), kBytes, offset);
        for (std::size_t done = 0; done < kBytes; done += kChunk) {
          if (socket.writeAll(out.data() + done, kChunk, ec) != kChunk || ec) return fail("write: " + describe(ec));
        }
        if (socket.readExactly(in.data(), kBytes, ec) != kBytes || ec) return fail("read: " + describe(ec));
        socket.shutdownWrite();
        char extra;
        socket.readSome(&extra, 1, ec);
        if (ec != Errc::end_of_stream) return fail("after the echo: " + describe(ec));
        if (evchan::test::checksum(evchan::test::kChecksumSeed, in.data(), kBytes) ==
            patternChecksum(kBytes, offset))
          ++verified;
        else
          fail("client " + std::to_string(i) + ": echo differs");
      }));
    }
    for (TaskHandle& client : clients) joinWithin(client, 15s);
    joinWithin(acceptor, 15s);
    channel.reset();
    CPPUNIT_ASSERT_MESSAGE(firstFailure, firstFailure.empty());
    CPPUNIT_ASSERT_EQUAL(kConnections, accepted.load());
    CPPUNIT_ASSERT_EQUAL(kConnections, echoed.load());
    CPPUNIT_ASSERT_EQUAL(kConnections, verified.load());
    CPPUNIT_ASSERT_EQUAL(0, serverFailures.load());
  }

  // ---------------------------------------------------------- bulk
  // 8 MiB in one writeAll and one readExactly, both inside tasks on one
  // worker: far beyond the socket buffers, so both must suspend on partial
  // transfers and let the other side run.
  void testEightMiBInOneCallInsideTasks() {
    constexpr std::size_t kBytes = std::size_t{8} << 20;
    ConnectedPair pair = connectPair();
    setTimeouts(pair);
    std::vector<unsigned char> out(kBytes), in(kBytes);
    evchan::test::fillPattern(out.data(), kBytes, 12345);
    std::size_t written = 0, read = 0;
    std::error_code writeError, readError;
    std::unique_ptr<EventChannel> channel = makeChannelWithoutMonitor(1);
    TaskHandle writer = channel->spawn([&] { written = pair.client.writeAll(out.data(), kBytes, writeError); });
    TaskHandle reader = channel->spawn([&] { read = pair.server.readExactly(in.data(), kBytes, readError); });
    joinWithin(writer);
    joinWithin(reader);
    ASSERT_NO_ERROR(writeError);
    ASSERT_NO_ERROR(readError);
    CPPUNIT_ASSERT_EQUAL(kBytes, written);
    CPPUNIT_ASSERT_EQUAL(kBytes, read);
    CPPUNIT_ASSERT_EQUAL(evchan::test::checksum(evchan::test::kChecksumSeed, out.data(), kBytes),
                         evchan::test::checksum(evchan::test::kChecksumSeed, in.data(), kBytes));
    CPPUNIT_ASSERT_EQUAL(1, channel->poolStats().peak);
    channel.reset();
  }

  // ---------------------------------------------------------- timeouts
  // Each scenario runs once in a task and once on a plain thread, with the
  // same assertions: timeouts behave the same both ways.

  void testReadTimeoutInTask() { checkReadTimeout(Where::InTask); }
  void testReadTimeoutOnThread() { checkReadTimeout(Where::OnThread); }

  void checkReadTimeout(Where where) {
    ConnectedPair pair = connectPair();
    setTimeouts(pair);
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    const bool finished = runBounded(
        where, channel.get(),
        [&] {
          pair.client.setTimeout(150ms);
          char buffer[4];
          std::error_code ec;
          std::size_t n = 1;
          const Clock::duration elapsed = timed([&] { n = pair.client.readSome(buffer, sizeof buffer, ec); });
          ASSERT_ERROR(std::errc::timed_out, ec);
          CPPUNIT_ASSERT_EQUAL(std::size_t{0}, n);
          CPPUNIT_ASSERT_MESSAGE(whereText(where) + elapsedText(elapsed), elapsed >= 140ms && elapsed < generous(2s));
          // Still usable: a later write is read.
          pair.client.setTimeout(kSocketTimeout);
          pair.server.writeAll("ping", 4);
          CPPUNIT_ASSERT_EQUAL(std::size_t{4}, pair.client.readExactly(buffer, sizeof buffer, ec));
          ASSERT_NO_ERROR(ec);
          CPPUNIT_ASSERT_EQUAL(std::string("ping"), std::string(buffer, 4));
          // And the thrown form times out the same way.
          pair.client.setTimeout(150ms);
          std::error_code thrown;
          try {
            pair.client.readSome(buffer, sizeof buffer);
          } catch (const SystemError& error) {
            thrown = error.code();
          }
          ASSERT_ERROR(std::errc::timed_out, thrown);
        },
        kPatience, [&] { pair.server.close(); });
    CPPUNIT_ASSERT_MESSAGE(whereText(where) + "readSome ignored its timeout", finished);
    channel.reset();
  }

  void testAcceptTimeoutInTask() { checkAcceptTimeout(Where::InTask); }
  void testAcceptTimeoutOnThread() { checkAcceptTimeout(Where::OnThread); }

  void checkAcceptTimeout(Where where) {
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    const int port = listener.port();
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    const bool finished = runBounded(
        where, channel.get(),
        [&] {
          listener.setTimeout(150ms);
          std::error_code ec;
          TcpSocket accepted;
          const Clock::duration elapsed = timed([&] { accepted = listener.accept(ec); });
          ASSERT_ERROR(std::errc::timed_out, ec);
          CPPUNIT_ASSERT(!accepted.isOpen());
          CPPUNIT_ASSERT_MESSAGE(whereText(where) + elapsedText(elapsed), elapsed >= 140ms && elapsed < generous(2s));
          // The listener still accepts.
          TcpSocket client = TcpSocket::connect({"127.0.0.1", port}, kSocketTimeout);
          listener.setTimeout(kSocketTimeout);
          accepted = listener.accept(ec);
          ASSERT_NO_ERROR(ec);
          CPPUNIT_ASSERT(accepted.isOpen());
          CPPUNIT_ASSERT_EQUAL(client.localAddress().port(), accepted.peerAddress().port());
        },
        kPatience, [&] {
          std::error_code ignored;
          TcpSocket::connect({"127.0.0.1", port}, 1s, ignored);
        });
    CPPUNIT_ASSERT_MESSAGE(whereText(where) + "accept ignored its timeout", finished);
    channel.reset();
  }

  void testConnectTimeoutInTask() { checkConnectTimeout(Where::InTask); }
  void testConnectTimeoutOnThread() { checkConnectTimeout(Where::OnThread); }

  // Backlog 0 and no accept(): once the accept queue is full Linux drops
  // further SYNs, so a connect eventually waits out its 300 ms timeout.
  void checkConnectTimeout(Where where) {
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0}, 0);
    const int port = listener.port();
    std::vector<TcpSocket> queued;  // connections the kernel completed; kept open to fill the queue
    std::error_code ec;
    Clock::duration elapsed{};
    int attempts = 0;
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    const bool finished = runBounded(
        where, channel.get(),
        [&] {
          for (; attempts < 16 && !ec && elapsed < 2300ms; ++attempts) {
            TcpSocket socket;
            elapsed = timed([&] { socket = TcpSocket::connect({"127.0.0.1", port}, 300ms, ec); });
            if (!ec) queued.push_back(std::move(socket));
          }
        },
        6s, [&] {
          // Accepting makes room in the queue, so a retransmitted SYN
          // completes a connect that ignores its timeout.
          listener.setTimeout(3s);
          std::error_code ignored;
          TcpSocket first = listener.accept(ignored), second = listener.accept(ignored);
        });
    CPPUNIT_ASSERT_MESSAGE(whereText(where) + "connect ignored its timeout", finished);
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT_MESSAGE(whereText(where) + elapsedText(elapsed) + " after " + std::to_string(attempts) +
                               " attempts",
                           elapsed >= 290ms && elapsed < 2300ms);
    channel.reset();
  }

  // Once a read has found the socket drained, a later read that finds
  // bytes waiting is done at once: the task is not suspended for it, on
  // any backend.  (On io_uring a read that filled its buffer used to leave
  // the socket marked drained, so every later read went through the ring
  // and suspended the task, the whole stream long.)  With one worker a
  // task that is never suspended leaves no turn to the counting task.
  void testReadsOfWaitingBytesDoNotSuspendTheTask() {
    constexpr std::size_t kPiece = 4096;
    constexpr int kPieces = 8;
    ConnectedPair pair = connectPair();
    setTimeouts(pair);
    std::unique_ptr<EventChannel> channel = makeChannelWithoutMonitor(1);
    std::atomic<bool> drainedOnce{false}, allWaiting{false}, readerDone{false};
    std::atomic<long> otherTurns{0};
    long turnsDuringReads = -1;
    std::size_t total = 0;
    TaskHandle reader = channel->spawn([&] {
      std::vector<unsigned char> buffer(kPiece);
      // A short read: the socket is drained, and the channel knows it.
      total += pair.client.readSome(buffer.data(), buffer.size());
      drainedOnce = true;
      CPPUNIT_ASSERT(yieldUntil([&] { return allWaiting.load(); }));
      // The first read may be suspended (its backend learns of the new
      // bytes then); none of the others may.
      total += pair.client.readSome(buffer.data(), buffer.size());
      const long before = otherTurns.load();
      for (int i = 1; i < kPieces; ++i) total += pair.client.readSome(buffer.data(), buffer.size());
      turnsDuringReads = otherTurns.load() - before;
      readerDone = true;
    });
    TaskHandle other = channel->spawn([&] {
      while (!readerDone.load()) {
        ++otherTurns;
        this_task::yield();
      }
    });
    pair.server.writeAll("x", 1);
    CPPUNIT_ASSERT(eventually([&] { return drainedOnce.load(); }, kPatience));
    const std::vector<unsigned char> bytes(kPiece * kPieces, 0x5a);
    pair.server.writeAll(bytes.data(), bytes.size());
    const evchan::test::UnreadBytes unread(pair.client);
    CPPUNIT_ASSERT(eventually([&] { return unread.count() == static_cast<long>(bytes.size()); }, kPatience));
    allWaiting = true;
    joinWithin(reader);
    joinWithin(other);
    CPPUNIT_ASSERT_EQUAL(1 + bytes.size(), total);
    CPPUNIT_ASSERT_EQUAL_MESSAGE(std::string("turns the other task had while ") + std::to_string(kPieces - 1) +
                                     " reads found their bytes waiting (" + channel->backendName() + ")",
                                 0L, turnsDuringReads);
  }

  void testZeroTimeoutInTask() { checkZeroTimeout(Where::InTask); }
  void testZeroTimeoutOnThread() { checkZeroTimeout(Where::OnThread); }

  // A zero timeout fails at once with timed_out when the call would block,
  // and does not fail when it would not: data already received is read.
  void checkZeroTimeout(Where where) {
    ConnectedPair pair = connectPair();
    setTimeouts(pair);
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    const bool finished = runBounded(
        where, channel.get(),
        [&] {
          pair.client.setTimeout(Duration::zero());
          char buffer[8];
          std::error_code ec;
          std::size_t n = 1;
          Clock::duration elapsed = timed([&] { n = pair.client.readSome(buffer, sizeof buffer, ec); });
          ASSERT_ERROR(std::errc::timed_out, ec);
          CPPUNIT_ASSERT_EQUAL(std::size_t{0}, n);
          CPPUNIT_ASSERT_MESSAGE(whereText(where) + elapsedText(elapsed), elapsed < generous(100ms));

          listener.setTimeout(Duration::zero());
          TcpSocket none;
          elapsed = timed([&] { none = listener.accept(ec); });
          ASSERT_ERROR(std::errc::timed_out, ec);
          CPPUNIT_ASSERT(!none.isOpen());
          CPPUNIT_ASSERT_MESSAGE(whereText(where) + elapsedText(elapsed), elapsed < generous(100ms));

          // Data that has arrived is read, even with a zero timeout.  The
          // wait until the OS has it holds the thread on purpose (in a task
          // too): nothing else looks at the socket.
          pair.server.writeAll("z", 1);
          const evchan::test::UnreadBytes unread(pair.client);
          CPPUNIT_ASSERT(evchan::test::eventually([&] { return unread.count() == 1; }));
          n = pair.client.readSome(buffer, sizeof buffer, ec);
          CPPUNIT_ASSERT_MESSAGE(whereText(where) + "a received byte was not read with a zero timeout: " +
                                     describe(ec),
                                 !ec);
          CPPUNIT_ASSERT_EQUAL(std::size_t{1}, n);
          CPPUNIT_ASSERT_EQUAL('z', buffer[0]);

          // A write with room in the buffer succeeds; one far larger than
          // the buffers writes what fits and then times out at once.
          pair.client.setTimeout(Duration::zero());
          CPPUNIT_ASSERT_EQUAL(std::size_t{1}, pair.client.writeAll("w", 1, ec));
          ASSERT_NO_ERROR(ec);
          CPPUNIT_ASSERT_EQUAL(std::size_t{1}, pair.server.readExactly(buffer, 1, ec));
          ASSERT_NO_ERROR(ec);
          CPPUNIT_ASSERT_EQUAL('w', buffer[0]);
          const std::vector<char> big(std::size_t{32} << 20, 'b');
          std::size_t written = 0;
          elapsed = timed([&] { written = pair.client.writeAll(big.data(), big.size(), ec); });
          ASSERT_ERROR(std::errc::timed_out, ec);
          CPPUNIT_ASSERT_MESSAGE(whereText(where) + "wrote " + std::to_string(written),
                                 written > 0 && written < big.size());
          CPPUNIT_ASSERT_MESSAGE(whereText(where) + elapsedText(elapsed), elapsed < generous(500ms));
        },
        kPatience, [&] { pair.server.close(); });
    CPPUNIT_ASSERT_MESSAGE(whereText(where) + "a zero timeout waited", finished);
    channel.reset();
  }

  // ---------------------------------------------------------- errors
  void testConnectRefusedInTask() { checkConnectRefused(Where::InTask); }
  void testConnectRefusedOnThread() { checkConnectRefused(Where::OnThread); }

  void checkConnectRefused(Where where) {
    const RefusingPort refusing;
    const int port = refusing.port();
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    runBounded(where, channel.get(), [&] {
      std::error_code ec;
      TcpSocket socket = TcpSocket::connect({"127.0.0.1", port}, kSocketTimeout, ec);
      ASSERT_ERROR(std::errc::connection_refused, ec);
      CPPUNIT_ASSERT(!socket.isOpen());
      // The thrown form names the peer.
      try {
        TcpSocket::connect({"127.0.0.1", port}, kSocketTimeout);
        CPPUNIT_FAIL(whereText(where) + "connect to a closed port did not throw");
      } catch (const SystemError& error) {
        ASSERT_ERROR(std::errc::connection_refused, error.code());
        CPPUNIT_ASSERT_MESSAGE(error.what(), std::string(error.what()).find(std::to_string(port)) != std::string::npos);
      }
    });
    channel.reset();
  }

  void testEndOfStreamInTask() { checkEndOfStream(Where::InTask); }
  void testEndOfStreamOnThread() { checkEndOfStream(Where::OnThread); }

  void checkEndOfStream(Where where) {
    ConnectedPair pair = connectPair();
    setTimeouts(pair);
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    runBounded(where, channel.get(), [&] {
      pair.server.writeAll("abc", 3);
      pair.server.shutdownWrite();
      char buffer[8];
      std::error_code ec;
      // The data sent before the FIN first, then end of stream.
      CPPUNIT_ASSERT_EQUAL(std::size_t{3}, pair.client.readExactly(buffer, 3, ec));
      ASSERT_NO_ERROR(ec);
      CPPUNIT_ASSERT_EQUAL(std::string("abc"), std::string(buffer, 3));
      CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.client.readSome(buffer, sizeof buffer, ec));
      ASSERT_ERROR(Errc::end_of_stream, ec);
      // readExactly reports end of stream too, with what it got.
      CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.client.readExactly(buffer, 2, ec));
      ASSERT_ERROR(Errc::end_of_stream, ec);
      // A half-close: the other direction still carries data.
      pair.client.writeAll("z", 1);
      CPPUNIT_ASSERT_EQUAL(std::size_t{1}, pair.server.readSome(buffer, sizeof buffer, ec));
      ASSERT_NO_ERROR(ec);
      CPPUNIT_ASSERT_EQUAL('z', buffer[0]);
    });
    channel.reset();
  }

  void testPeerResetInTask() { checkPeerReset(Where::InTask); }
  void testPeerResetOnThread() { checkPeerReset(Where::OnThread); }

  void checkPeerReset(Where where) {
    if (std::string why = evchan::test::whyCloseWithUnreadDataSendsNoReset(); !why.empty()) EVCHAN_SKIP(why);
    ConnectedPair pair = connectPair();
    setTimeouts(pair);
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    runBounded(where, channel.get(), [&] {
      // Two bytes in one segment: once the server has read the first, the
      // second is certainly queued unread, so close() sends RST, not FIN.
      pair.client.writeAll("xy", 2);
      char byte;
      pair.server.readExactly(&byte, 1);
      pair.server.close();
      std::error_code ec;
      CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.client.readSome(&byte, 1, ec));
      ASSERT_ERROR(std::errc::connection_reset, ec);
    });
    channel.reset();
  }

  void testWriteToClosedPeerInTaskDoesNotRaiseSigpipe() { checkWriteToClosedPeer(Where::InTask); }
  void testWriteToClosedPeerOnThreadDoesNotRaiseSigpipe() { checkWriteToClosedPeer(Where::OnThread); }

  void checkWriteToClosedPeer(Where where) {
    DefaultSigpipe defaultSigpipe;  // before the channel: its workers inherit the mask
    assertSigpipeIsDeadly();
    ConnectedPair pair = connectPair();
    setTimeouts(pair);
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    runBounded(where, channel.get(), [&] {
      assertSigpipeIsDeadly();  // on the thread that writes
      pair.server.close();
      // The first write after the FIN is accepted and draws an RST; the
      // following ones fail (EPIPE would be SIGPIPE without MSG_NOSIGNAL).
      const std::vector<char> chunk(64 * 1024, 'p');
      std::error_code ec;
      int attempts = 0;
      for (; attempts < 200 && !ec; ++attempts) pair.client.writeAll(chunk.data(), chunk.size(), ec);
      CPPUNIT_ASSERT_MESSAGE(whereText(where) + "got " + describe(ec) + " after " + std::to_string(attempts),
                             ec == std::errc::broken_pipe || ec == std::errc::connection_reset);
      std::error_code thrown;
      try {
        pair.client.writeAll(chunk.data(), chunk.size());
      } catch (const SystemError& error) {
        thrown = error.code();
      }
      CPPUNIT_ASSERT_MESSAGE(whereText(where) + "got " + describe(thrown),
                             thrown == std::errc::broken_pipe || thrown == std::errc::connection_reset);
    });
    channel.reset();
  }

  // ---------------------------------------------------------- mixed use
  // One connection used by plain threads and by tasks in turn, waits
  // included on both sides, and by plain threads again once the channel
  // that registered it is gone.
  // A connection handed from a task of one channel to a task of another
  // (moving work between channels) goes on working in each, both
  // directions, including reads that wait.  It used to fail with
  // wrong_channel in every channel but the first it waited in.
  void testSocketMovesBetweenChannelsOfTasks() {
    ConnectedPair pair = connectPair();
    setTimeouts(pair);
    char buffer[8];
    auto expectRead = [&](TcpSocket& socket, const std::string& text) {
      std::error_code ec;
      CPPUNIT_ASSERT_EQUAL(text.size(), socket.readExactly(buffer, text.size(), ec));
      ASSERT_NO_ERROR(ec);
      CPPUNIT_ASSERT_EQUAL(text, std::string(buffer, text.size()));
    };
    std::unique_ptr<EventChannel> first = makeChannel(1);
    std::unique_ptr<EventChannel> second = makeChannel(1);
    std::atomic<bool> waiting{false};
    // A task of `channel` reads `text` from the server side, waiting for
    // it, and answers `reply`.
    auto serveOnce = [&](EventChannel& channel, const std::string& text, const std::string& reply) {
      waiting = false;
      TaskHandle task = channel.spawn([&, text, reply] {
        waiting = true;
        expectRead(pair.server, text);
        pair.server.writeAll(reply.data(), reply.size());
      });
      CPPUNIT_ASSERT(eventually([&] { return waiting.load(); }));
      CPPUNIT_ASSERT(evchan::test::allWorkersIdle(channel));  // it waits in the read
      pair.client.writeAll(text.data(), text.size());
      joinWithin(task);
      expectRead(pair.client, reply);
    };
    serveOnce(*first, "a1", "a2");
    serveOnce(*second, "b1", "b2");
    serveOnce(*first, "c1", "c2");
    serveOnce(*second, "d1", "d2");
  }

  void testSameSocketOnThreadsAndInTasks() {
    ConnectedPair pair = connectPair();
    setTimeouts(pair);
    char buffer[8];
    auto expectRead = [&](TcpSocket& socket, const std::string& text) {
      std::error_code ec;
      CPPUNIT_ASSERT_EQUAL(text.size(), socket.readExactly(buffer, text.size(), ec));
      ASSERT_NO_ERROR(ec);
      CPPUNIT_ASSERT_EQUAL(text, std::string(buffer, text.size()));
    };
    // 1. Plain thread, both directions.
    pair.client.writeAll("t1", 2);
    expectRead(pair.server, "t1");
    pair.server.writeAll("t2", 2);
    expectRead(pair.client, "t2");

    std::unique_ptr<EventChannel> channel = makeChannel(1);
    std::atomic<bool> taskWaiting{false};
    // 2. In a task: both directions, then a read that waits for a plain
    //    thread's write.
    TaskHandle task = channel->spawn([&] {
      pair.server.writeAll("k1", 2);
      expectRead(pair.client, "k1");
      pair.client.writeAll("k2", 2);
      expectRead(pair.server, "k2");
      taskWaiting = true;
      expectRead(pair.client, "w1");
    });
    CPPUNIT_ASSERT(eventually([&] { return taskWaiting.load(); }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));  // it waits in the read
    pair.server.writeAll("w1", 2);
    joinWithin(task);

    // 3. Plain thread again, with a read that waits for another thread.
    std::thread later([&] {
      std::this_thread::sleep_for(30ms);
      pair.server.writeAll("p1", 2);
    });
    expectRead(pair.client, "p1");
    later.join();
    pair.client.writeAll("p2", 2);
    expectRead(pair.server, "p2");

    // 4. A task again, on the same channel.
    task = channel->spawn([&] {
      pair.client.writeAll("k3", 2);
      expectRead(pair.server, "k3");
      pair.server.writeAll("k4", 2);
      expectRead(pair.client, "k4");
    });
    joinWithin(task);

    // 5. The channel is gone; the sockets still work on a plain thread.
    channel.reset();
    pair.client.writeAll("e1", 2);
    expectRead(pair.server, "e1");
    pair.server.writeAll("e2", 2);
    expectRead(pair.client, "e2");
    pair.server.shutdownWrite();
    std::error_code ec;
    pair.client.readSome(buffer, 1, ec);
    ASSERT_ERROR(Errc::end_of_stream, ec);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(TaskSocketTest);
