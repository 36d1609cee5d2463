// SPDX-License-Identifier: Apache-2.0
// TcpSocket on real loopback connections: data transfer, timeouts, end of
// stream, resets, SIGPIPE, bad input and socket options.
#include <cppunit/extensions/HelperMacros.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <evchan/evchan.h>

#include "support/diagnostics.h"
#include "support/default_sigpipe.h"
#include "support/host_behaviour.h"
#include "support/host_socket.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/skip.h"
#include "support/waiting.h"

using namespace std::chrono_literals;

namespace {

using evchan::Address;
using evchan::AddressFamily;
using evchan::Errc;
using evchan::SystemError;
using evchan::TcpListener;
using evchan::TcpSocket;
using evchan::test::generous;
using evchan::test::ConnectedPair;
using evchan::test::connectPair;
using evchan::test::DefaultSigpipe;
using evchan::test::RefusingPort;
using Clock = evchan::test::Clock;
using evchan::test::describe;
using evchan::test::elapsedText;
using evchan::test::timed;
using evchan::test::finishesWithin;

// Every socket a test hands to another thread gets a finite timeout, so a
// failing test ends with an error instead of hanging in join.
void setTimeouts(ConnectedPair& pair, evchan::Duration timeout) {
  pair.client.setTimeout(timeout);
  pair.server.setTimeout(timeout);
}

// ------------------------------------------------------------ echo
// Echoes everything it reads until end of stream, then closes.
void echoUntilEndOfStream(TcpSocket& server) {
  std::vector<char> buffer(4096);
  std::error_code ec;
  for (;;) {
    const std::size_t n = server.readSome(buffer.data(), buffer.size(), ec);
    if (ec) break;
    server.writeAll(buffer.data(), n);
  }
  if (ec != Errc::end_of_stream) throw SystemError(ec, "echo server read");
  server.close();
}

// ------------------------------------------------------------ bulk transfer
constexpr std::size_t kBulkBytes = std::size_t{64} << 20;
// Each writeAll() hands over far more than the socket buffers hold, so it
// must cope with partial sends and wait for room; reads are smaller.
constexpr std::size_t kWriteChunk = std::size_t{16} << 20;
constexpr std::size_t kReadChunk = std::size_t{256} << 10;

// Writes `total` bytes of the pattern, then sends FIN; returns their checksum.
std::uint64_t sendPattern(TcpSocket& socket, std::size_t total) {
  std::vector<unsigned char> chunk(kWriteChunk);
  std::uint64_t sum = evchan::test::kChecksumSeed;
  for (std::size_t offset = 0; offset < total; offset += chunk.size()) {
    const std::size_t n = std::min(chunk.size(), total - offset);
    evchan::test::fillPattern(chunk.data(), n, offset);
    sum = evchan::test::checksum(sum, chunk.data(), n);
    socket.writeAll(chunk.data(), n);
  }
  socket.shutdownWrite();
  return sum;
}

struct Received {
  std::size_t bytes = 0;
  std::uint64_t sum = evchan::test::kChecksumSeed;
};

// Reads until end of stream, counting and checksumming what arrives.
Received receiveAll(TcpSocket& socket) {
  std::vector<unsigned char> chunk(kReadChunk);
  Received received;
  std::error_code ec;
  for (;;) {
    const std::size_t n = socket.readSome(chunk.data(), chunk.size(), ec);
    if (ec) break;
    received.sum = evchan::test::checksum(received.sum, chunk.data(), n);
    received.bytes += n;
  }
  if (ec != Errc::end_of_stream) throw SystemError(ec, "bulk read");
  return received;
}

// ------------------------------------------------------------ misc
}  // namespace

/// Asserts that the std::error_code `ec` equals `expected`: an evchan::Errc
/// (same code) or a std::errc (same portable condition).

class TcpSocketTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(TcpSocketTest);
  CPPUNIT_TEST(testEchoRoundTripIpv4);
  CPPUNIT_TEST(testEchoRoundTripIpv6);
  CPPUNIT_TEST(testBidirectional64MiB);
  CPPUNIT_TEST(testReadSomeReturnsWhatIsAvailable);
  CPPUNIT_TEST(testReadExactlyAssemblesSmallWrites);
  CPPUNIT_TEST(testReadSomeTimesOut);
  CPPUNIT_TEST(testReadSomeTimeoutThrows);
  CPPUNIT_TEST(testZeroTimeoutFailsAtOnce);
  CPPUNIT_TEST(testSocketUsableAfterTimeout);
  CPPUNIT_TEST(testUrgentDataDoesNotKeepABlockedWriteFromTimingOut);
  CPPUNIT_TEST(testShortTimeoutsSleepRatherThanSpin);
  CPPUNIT_TEST(testConnectTimesOutWhenBacklogIsFull);
  CPPUNIT_TEST(testConnectRefused);
  CPPUNIT_TEST(testConnectRefusedThrowsWithPeer);
  CPPUNIT_TEST(testEndOfStreamAfterShutdownWrite);
  CPPUNIT_TEST(testEndOfStreamAfterClose);
  CPPUNIT_TEST(testReadExactlyReturnsPartialCountAtEndOfStream);
  CPPUNIT_TEST(testPeerResetIsConnectionReset);
  CPPUNIT_TEST(testWriteToClosedPeerDoesNotRaiseSigpipe);
  CPPUNIT_TEST(testGatherWriteToClosedPeerDoesNotRaiseSigpipe);
  CPPUNIT_TEST(testGatherWriteSendsManyPiecesInOneCall);
  CPPUNIT_TEST(testNullBufferIsRejected);
  CPPUNIT_TEST(testZeroLengthCallsReturnAtOnce);
  CPPUNIT_TEST(testNegativeTimeoutIsRejected);
  CPPUNIT_TEST(testDefaultSocketIsNotOpen);
  CPPUNIT_TEST(testClosedSocketIsNotOpen);
  CPPUNIT_TEST(testMoveTransfersConnection);
  CPPUNIT_TEST(testPortOutOfRange);
  CPPUNIT_TEST(testEmptyHost);
  CPPUNIT_TEST(testUnresolvableHostFailsQuickly);
  CPPUNIT_TEST(testSocketOptions);
  CPPUNIT_TEST(testAddressesOfConnectedPair);
  CPPUNIT_TEST_SUITE_END();

 public:
  void testEchoRoundTripIpv4() { checkEchoRoundTrip("127.0.0.1", AddressFamily::IPv4); }

  void testEchoRoundTripIpv6() {
    if (!evchan::test::ipv6LoopbackAvailable()) EVCHAN_SKIP("no IPv6 loopback");
    checkEchoRoundTrip("::1", AddressFamily::IPv6);
  }

  void testBidirectional64MiB() {
    ConnectedPair pair = connectPair();
    setTimeouts(pair, 10s);
    // Four threads so that neither direction waits on the other: a writer
    // blocked on a full buffer never stops its peer's reader.
    auto upload = std::async(std::launch::async, [&] { return sendPattern(pair.client, kBulkBytes); });
    auto uploaded = std::async(std::launch::async, [&] { return receiveAll(pair.server); });
    auto download = std::async(std::launch::async, [&] { return sendPattern(pair.server, kBulkBytes); });
    auto downloaded = std::async(std::launch::async, [&] { return receiveAll(pair.client); });
    const std::uint64_t upSent = upload.get(), downSent = download.get();
    const Received upReceived = uploaded.get(), downReceived = downloaded.get();

    CPPUNIT_ASSERT_EQUAL(kBulkBytes, upReceived.bytes);
    CPPUNIT_ASSERT_EQUAL(upSent, upReceived.sum);
    CPPUNIT_ASSERT_EQUAL(kBulkBytes, downReceived.bytes);
    CPPUNIT_ASSERT_EQUAL(downSent, downReceived.sum);
  }

  void testReadSomeReturnsWhatIsAvailable() {
    ConnectedPair pair = connectPair();
    setTimeouts(pair, 5s);
    const std::string sent = "0123456789";
    pair.server.writeAll(sent.data(), sent.size());

    char buffer[1000];
    std::size_t received = pair.client.readSome(buffer, sizeof buffer);
    CPPUNIT_ASSERT_MESSAGE("readSome returned " + std::to_string(received), received > 0 && received <= 10);
    while (received < sent.size()) received += pair.client.readSome(buffer + received, sizeof buffer - received);
    CPPUNIT_ASSERT_EQUAL(sent, std::string(buffer, received));
  }

  void testReadExactlyAssemblesSmallWrites() {
    ConnectedPair pair = connectPair();
    setTimeouts(pair, 5s);
    pair.server.setNoDelay(true);  // each piece leaves as its own segment
    const std::string pieces[] = {"abcde", "fghij", "klmno", "pqrst"};
    auto writer = std::async(std::launch::async, [&] {
      for (const std::string& piece : pieces) {
        if (&piece != &pieces[0]) std::this_thread::sleep_for(30ms);  // the pauses are the point
        pair.server.writeAll(piece.data(), piece.size());
      }
    });
    char buffer[20];
    const std::size_t n = pair.client.readExactly(buffer, sizeof buffer);
    writer.get();
    CPPUNIT_ASSERT_EQUAL(sizeof buffer, n);
    CPPUNIT_ASSERT_EQUAL(std::string("abcdefghijklmnopqrst"), std::string(buffer, n));
  }

  void testReadSomeTimesOut() {
    ConnectedPair pair = connectPair();
    pair.client.setTimeout(200ms);
    CPPUNIT_ASSERT_EQUAL(evchan::Duration(200ms).count(), pair.client.timeout().count());
    char byte;
    std::error_code ec;
    std::size_t n = 1;
    Clock::duration elapsed{};
    // Closing the peer releases a read that ignores its timeout.
    const bool finished = finishesWithin(3s, [&] { elapsed = timed([&] { n = pair.client.readSome(&byte, 1, ec); }); },
                                         [&] { pair.server.close(); });
    CPPUNIT_ASSERT_MESSAGE("readSome ignored its timeout", finished);
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, n);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(elapsed), elapsed >= 190ms && elapsed < generous(2200ms));
  }

  // Urgent data from the peer, unread, must not keep a write that waits
  // for room from timing out.  The portable layer used to wait for POLLPRI
  // as well as POLLOUT, and urgent data keeps POLLPRI set until it is
  // read: every wait returned at once, each pass started the timeout
  // again, and the write spun at full CPU until the socket was closed.
  void testUrgentDataDoesNotKeepABlockedWriteFromTimingOut() {
    ConnectedPair pair = connectPair();
    CPPUNIT_ASSERT(evchan::test::setHostSocketBuffers(pair.client, 65536, 65536));
    CPPUNIT_ASSERT(evchan::test::setHostSocketBuffers(pair.server, 65536, 65536));
    CPPUNIT_ASSERT(evchan::test::sendHostUrgentByte(pair.client));
    pair.server.setTimeout(300ms);
    const std::vector<char> data(16 * 1024 * 1024, 'x');
    std::error_code ec;
    Clock::duration elapsed{};
    const bool finished = finishesWithin(generous(5s), [&] {
      elapsed = timed([&] { pair.server.writeAll(data.data(), data.size(), ec); });
    }, [&] { pair.server.close(); });
    CPPUNIT_ASSERT_MESSAGE("writeAll waited on after its timeout", finished);
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(elapsed), elapsed < generous(3s));
  }

  // A timeout shorter than a millisecond (what is left of a longer one,
  // too) is waited for asleep.  The portable layer handed apr_poll() the
  // microseconds, which it cut down to whole milliseconds: 0, a poll that
  // returned at once, again and again until the deadline.
  void testShortTimeoutsSleepRatherThanSpin() {
    ConnectedPair pair = connectPair();
    pair.client.setTimeout(900us);
    char byte;
    const double cpuBefore = evchan::test::threadCpuSeconds();
    const auto begin = Clock::now();
    for (int i = 0; i < 100; ++i) {
      std::error_code ec;
      pair.client.readSome(&byte, 1, ec);
      ASSERT_ERROR(std::errc::timed_out, ec);
    }
    const double wall = std::chrono::duration<double>(Clock::now() - begin).count();
    const double cpu = evchan::test::threadCpuSeconds() - cpuBefore;
    if (cpu < 0) return;  // no per-thread CPU clock here
    // Asleep, about 35 us of CPU a wait here; spinning, up to the 900 us.
    CPPUNIT_ASSERT_MESSAGE("100 timed-out reads took " + std::to_string(cpu * 1e3) + " ms of CPU in " +
                               std::to_string(wall * 1e3) + " ms",
                           cpu < 0.030);
  }

  void testReadSomeTimeoutThrows() {
    ConnectedPair pair = connectPair();
    pair.client.setTimeout(200ms);
    char byte;
    std::error_code thrown;
    std::string peer;
    Clock::duration elapsed{};
    const bool finished = finishesWithin(3s, [&] {
      elapsed = timed([&] {
        try {
          pair.client.readSome(&byte, 1);
        } catch (const SystemError& error) {
          thrown = error.code();
          peer = error.peer();
        }
      });
    }, [&] { pair.server.close(); });
    CPPUNIT_ASSERT_MESSAGE("readSome ignored its timeout", finished);
    ASSERT_ERROR(std::errc::timed_out, thrown);
    CPPUNIT_ASSERT_EQUAL(pair.client.peerAddress().toString(), peer);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(elapsed), elapsed >= 190ms && elapsed < generous(2200ms));
  }

  void testZeroTimeoutFailsAtOnce() {
    ConnectedPair pair = connectPair();
    pair.client.setTimeout(0ms);
    char byte;
    std::error_code ec;
    Clock::duration elapsed{};
    const bool finished = finishesWithin(3s, [&] { elapsed = timed([&] { pair.client.readSome(&byte, 1, ec); }); },
                                         [&] { pair.server.close(); });
    CPPUNIT_ASSERT_MESSAGE("readSome waited despite a zero timeout", finished);
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(elapsed), elapsed < generous(100ms));
  }

  void testSocketUsableAfterTimeout() {
    ConnectedPair pair = connectPair();
    pair.client.setTimeout(50ms);
    char buffer[4];
    std::error_code ec;
    const bool finished = finishesWithin(3s, [&] { pair.client.readSome(buffer, sizeof buffer, ec); },
                                         [&] { pair.server.close(); });
    CPPUNIT_ASSERT_MESSAGE("readSome ignored its timeout", finished);
    ASSERT_ERROR(std::errc::timed_out, ec);

    pair.client.setTimeout(5s);
    pair.server.writeAll("ping", 4);
    CPPUNIT_ASSERT_EQUAL(std::size_t{4}, pair.client.readExactly(buffer, sizeof buffer, ec));
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT_EQUAL(std::string("ping"), std::string(buffer, 4));
  }

  void testConnectTimesOutWhenBacklogIsFull() {
    // Backlog 0 and no accept(): once the accept queue is full Linux drops
    // further SYNs, so a connect eventually waits out its timeout.
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0}, 0);
    const int port = listener.port();
    std::vector<TcpSocket> queued;  // connections the kernel completed; kept open to fill the queue
    std::error_code ec;
    Clock::duration elapsed{};
    const bool finished = finishesWithin(5s, [&] {
      for (int attempt = 0; attempt < 16 && !ec && elapsed < 2300ms; ++attempt) {
        TcpSocket socket;
        elapsed = timed([&] { socket = TcpSocket::connect({"127.0.0.1", port}, 300ms, ec); });
        if (!ec) queued.push_back(std::move(socket));
      }
    }, [&] {
      // Accepting makes room in the queue, so a retransmitted SYN
      // completes a connect that ignores its timeout.
      listener.setTimeout(3s);
      std::error_code ignored;
      TcpSocket first = listener.accept(ignored), second = listener.accept(ignored);
    });
    CPPUNIT_ASSERT_MESSAGE("connect ignored its timeout", finished);
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(elapsed), elapsed >= 290ms && elapsed < generous(2300ms));
  }

  void testConnectRefused() {
    const RefusingPort refusing;
    const int port = refusing.port();
    std::error_code ec;
    TcpSocket socket = TcpSocket::connect({"127.0.0.1", port}, 5s, ec);
    ASSERT_ERROR(std::errc::connection_refused, ec);
    CPPUNIT_ASSERT(!socket.isOpen());
  }

  void testConnectRefusedThrowsWithPeer() {
    const RefusingPort refusing;
    const int port = refusing.port();
    const std::string peer = "127.0.0.1:" + std::to_string(port);
    try {
      TcpSocket::connect({"127.0.0.1", port}, 5s);
      CPPUNIT_FAIL("connect to a closed port did not throw");
    } catch (const SystemError& error) {
      ASSERT_ERROR(std::errc::connection_refused, error.code());
      CPPUNIT_ASSERT_MESSAGE(std::string("what(): ") + error.what(),
                             std::string(error.what()).find(peer) != std::string::npos);
    }
  }

  void testEndOfStreamAfterShutdownWrite() {
    ConnectedPair pair = connectPair();
    setTimeouts(pair, 5s);
    pair.server.writeAll("abc", 3);
    pair.server.shutdownWrite();
    char buffer[8];
    std::error_code ec;
    // The data sent before the FIN arrives first, then end of stream.
    CPPUNIT_ASSERT_EQUAL(std::size_t{3}, pair.client.readExactly(buffer, 3, ec));
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.client.readSome(buffer, sizeof buffer, ec));
    ASSERT_ERROR(Errc::end_of_stream, ec);
    // A half-close: the other direction still carries data.
    pair.client.writeAll("z", 1);
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, pair.server.readSome(buffer, sizeof buffer, ec));
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT_EQUAL('z', buffer[0]);
  }

  void testEndOfStreamAfterClose() {
    ConnectedPair pair = connectPair();
    pair.client.setTimeout(5s);
    pair.server.close();
    char buffer[8];
    std::error_code ec;
    pair.client.readSome(buffer, sizeof buffer, ec);
    ASSERT_ERROR(Errc::end_of_stream, ec);
    std::error_code thrown;
    try {
      pair.client.readSome(buffer, sizeof buffer);
    } catch (const SystemError& error) {
      thrown = error.code();
    }
    ASSERT_ERROR(Errc::end_of_stream, thrown);
  }

  void testReadExactlyReturnsPartialCountAtEndOfStream() {
    ConnectedPair pair = connectPair();
    pair.client.setTimeout(5s);
    pair.server.writeAll("xyz", 3);
    pair.server.shutdownWrite();
    char buffer[10] = {};
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::size_t{3}, pair.client.readExactly(buffer, sizeof buffer, ec));
    ASSERT_ERROR(Errc::end_of_stream, ec);
    CPPUNIT_ASSERT_EQUAL(std::string("xyz"), std::string(buffer, 3));
  }

  void testPeerResetIsConnectionReset() {
    if (std::string why = evchan::test::whyCloseWithUnreadDataSendsNoReset(); !why.empty()) EVCHAN_SKIP(why);
    ConnectedPair pair = connectPair();
    setTimeouts(pair, 5s);
    // Two bytes in one segment: once the server has read the first, the
    // second is certainly queued unread, so close() sends RST, not FIN.
    pair.client.writeAll("xy", 2);
    char byte;
    pair.server.readExactly(&byte, 1);
    pair.server.close();
    std::error_code ec;
    // Bounded by the 5 s timeout: the RST wakes the waiting read.
    pair.client.readSome(&byte, 1, ec);
    ASSERT_ERROR(std::errc::connection_reset, ec);
  }

  void testWriteToClosedPeerDoesNotRaiseSigpipe() {
    DefaultSigpipe defaultSigpipe;
    const std::string harmless = DefaultSigpipe::whatKeepsSigpipeHarmless();
    CPPUNIT_ASSERT_MESSAGE("SIGPIPE must kill the process in this test: " + harmless, harmless.empty());

    ConnectedPair pair = connectPair();
    pair.client.setTimeout(5s);
    pair.server.close();
    // The first write after the FIN is accepted and draws an RST; the
    // following ones fail (EPIPE would be SIGPIPE without MSG_NOSIGNAL).
    const std::vector<char> chunk(64 * 1024, 'p');
    std::error_code ec;
    for (int attempt = 0; attempt < 200 && !ec; ++attempt) pair.client.writeAll(chunk.data(), chunk.size(), ec);
    CPPUNIT_ASSERT_MESSAGE("got " + describe(ec),
                           ec == std::errc::broken_pipe || ec == std::errc::connection_reset);
    std::error_code thrown;
    try {
      pair.client.writeAll(chunk.data(), chunk.size());
    } catch (const SystemError& error) {
      thrown = error.code();
    }
    CPPUNIT_ASSERT_MESSAGE("got " + describe(thrown),
                           thrown == std::errc::broken_pipe || thrown == std::errc::connection_reset);
  }

  // The gather path is sendmsg with MSG_NOSIGNAL, never writev.
  void testGatherWriteToClosedPeerDoesNotRaiseSigpipe() {
    DefaultSigpipe defaultSigpipe;
    const std::string harmless = DefaultSigpipe::whatKeepsSigpipeHarmless();
    CPPUNIT_ASSERT_MESSAGE("SIGPIPE must kill the process in this test: " + harmless, harmless.empty());

    ConnectedPair pair = connectPair();
    pair.client.setTimeout(5s);
    pair.server.close();
    const std::vector<char> chunk(32 * 1024, 'p');
    const evchan::ConstBuffer pieces[] = {{chunk.data(), 100}, {nullptr, 0}, {chunk.data(), chunk.size()}, {"!", 1}};
    std::error_code ec;
    for (int attempt = 0; attempt < 200 && !ec; ++attempt) pair.client.writeAll(pieces, 4, ec);
    CPPUNIT_ASSERT_MESSAGE("got " + describe(ec),
                           ec == std::errc::broken_pipe || ec == std::errc::connection_reset);
  }

  // An empty socket takes every piece of a small gather write in one
  // writeSome; more pieces than one call may carry (IOV_MAX on POSIX, 64
  // on Windows) go out in part, and more than one piece per call.
  void testGatherWriteSendsManyPiecesInOneCall() {
    ConnectedPair pair = connectPair();
    setTimeouts(pair, 5s);
    const evchan::ConstBuffer request[] = {{"GET ", 4}, {"", 0}, {"/ HTTP/1.1\r\n", 12}, {nullptr, 0}, {"\r\n", 2}};
    CPPUNIT_ASSERT_EQUAL(std::size_t{18}, pair.client.writeSome(request, 5));
    char got[18];
    pair.server.readExactly(got, sizeof got);
    CPPUNIT_ASSERT_EQUAL(std::string("GET / HTTP/1.1\r\n\r\n"), std::string(got, sizeof got));

    const std::string bytes(2000, 'x');
    std::vector<evchan::ConstBuffer> ones;
    for (const char& byte : bytes) ones.push_back(evchan::ConstBuffer{&byte, 1});
    const std::size_t sent = pair.client.writeSome(ones.data(), ones.size());
    CPPUNIT_ASSERT_MESSAGE("sent " + std::to_string(sent), sent > 1 && sent < ones.size());
    std::string echoed(sent, '\0');
    pair.server.readExactly(echoed.data(), sent);
    CPPUNIT_ASSERT_EQUAL(bytes.substr(0, sent), echoed);
  }

  void testNullBufferIsRejected() {
    ConnectedPair pair = connectPair();
    setTimeouts(pair, 5s);
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.client.readSome(nullptr, 10, ec));
    ASSERT_ERROR(Errc::null_buffer, ec);
    ASSERT_ERROR(std::errc::invalid_argument, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.client.readExactly(nullptr, 10, ec));
    ASSERT_ERROR(Errc::null_buffer, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.client.writeAll(nullptr, 10, ec));
    ASSERT_ERROR(Errc::null_buffer, ec);
    CPPUNIT_ASSERT_THROW(pair.client.writeAll(nullptr, 1), SystemError);
    // Nothing was sent: the server sees the client's end of stream only.
    pair.client.shutdownWrite();
    char byte;
    pair.server.readSome(&byte, 1, ec);
    ASSERT_ERROR(Errc::end_of_stream, ec);
  }

  void testZeroLengthCallsReturnAtOnce() {
    ConnectedPair pair = connectPair();
    CPPUNIT_ASSERT(pair.client.timeout() == evchan::kInfiniteTimeout);  // a wait would never end
    char buffer[1];
    std::error_code readEc = Errc::not_open, exactEc = Errc::not_open, writeEc = Errc::not_open,
                    nullEc = Errc::not_open;
    std::size_t readN = 1, exactN = 1, writeN = 1, nullN = 1;
    // If a call blocks, closing the peer releases it so the thread can be joined.
    const bool finished = finishesWithin(2s, [&] {
      readN = pair.client.readSome(buffer, 0, readEc);
      exactN = pair.client.readExactly(buffer, 0, exactEc);
      writeN = pair.client.writeAll(buffer, 0, writeEc);
      nullN = pair.client.readSome(nullptr, 0, nullEc);
    }, [&] { pair.server.close(); });
    CPPUNIT_ASSERT_MESSAGE("a zero-length call blocked", finished);
    ASSERT_NO_ERROR(readEc);
    ASSERT_NO_ERROR(exactEc);
    ASSERT_NO_ERROR(writeEc);
    ASSERT_NO_ERROR(nullEc);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, readN + exactN + writeN + nullN);
  }

  void testNegativeTimeoutIsRejected() {
    ConnectedPair pair = connectPair();
    pair.client.setTimeout(1s);
    std::error_code ec;
    pair.client.setTimeout(-1ms, ec);
    ASSERT_ERROR(Errc::negative_timeout, ec);
    CPPUNIT_ASSERT_EQUAL(evchan::Duration(1s).count(), pair.client.timeout().count());  // unchanged
    CPPUNIT_ASSERT_THROW(pair.client.setTimeout(-1ns), SystemError);

    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    TcpSocket socket = TcpSocket::connect({"127.0.0.1", listener.port()}, -1ms, ec);
    ASSERT_ERROR(Errc::negative_timeout, ec);
    CPPUNIT_ASSERT(!socket.isOpen());
    const Address address = Address::fromNumeric("127.0.0.1", listener.port(), AddressFamily::IPv4);
    socket = TcpSocket::connect(address, -1ms, ec);
    ASSERT_ERROR(Errc::negative_timeout, ec);
    CPPUNIT_ASSERT(!socket.isOpen());
  }

  void testDefaultSocketIsNotOpen() {
    TcpSocket socket;
    CPPUNIT_ASSERT(!socket.isOpen());
    assertEveryCallIsNotOpen(socket);
    socket.close();  // harmless on a closed socket
  }

  void testClosedSocketIsNotOpen() {
    ConnectedPair pair = connectPair();
    pair.server.setTimeout(5s);
    pair.client.close();
    pair.client.close();  // idempotent
    CPPUNIT_ASSERT(!pair.client.isOpen());
    assertEveryCallIsNotOpen(pair.client);
    // The connection really is closed: the peer reads end of stream.
    char byte;
    std::error_code ec;
    pair.server.readSome(&byte, 1, ec);
    ASSERT_ERROR(Errc::end_of_stream, ec);
  }

  void testMoveTransfersConnection() {
    ConnectedPair first = connectPair();
    ConnectedPair second = connectPair();
    setTimeouts(first, 5s);
    setTimeouts(second, 5s);

    TcpSocket moved(std::move(first.client));
    CPPUNIT_ASSERT(!first.client.isOpen());
    assertEveryCallIsNotOpen(first.client);
    CPPUNIT_ASSERT(moved.isOpen());
    expectTransfer(moved, first.server, "m");

    // Move-assigning over an open socket closes the one it held.
    moved = std::move(second.client);
    CPPUNIT_ASSERT(!second.client.isOpen());
    expectTransfer(moved, second.server, "n");
    char byte;
    std::error_code ec;
    first.server.readSome(&byte, 1, ec);
    ASSERT_ERROR(Errc::end_of_stream, ec);
  }

  void testPortOutOfRange() {
    for (const int port : {70000, 65536, -1}) {
      std::error_code ec;
      TcpSocket socket = TcpSocket::connect({"127.0.0.1", port}, 1s, ec);
      ASSERT_ERROR(Errc::port_out_of_range, ec);
      ASSERT_ERROR(std::errc::invalid_argument, ec);
      CPPUNIT_ASSERT(!socket.isOpen());
      socket = TcpSocket::connect(Address::fromNumeric("127.0.0.1", port, AddressFamily::IPv4), 1s, ec);
      ASSERT_ERROR(Errc::port_out_of_range, ec);
    }
    CPPUNIT_ASSERT_THROW(TcpSocket::connect({"127.0.0.1", 70000}), SystemError);
  }

  void testEmptyHost() {
    std::error_code ec;
    TcpSocket socket = TcpSocket::connect({"", 80}, 1s, ec);
    ASSERT_ERROR(Errc::empty_host, ec);
    CPPUNIT_ASSERT(!socket.isOpen());
    CPPUNIT_ASSERT_THROW(TcpSocket::connect({"", 80}, 1s), SystemError);
  }

  void testUnresolvableHostFailsQuickly() {
    // A label longer than 63 characters fails inside the resolver, before
    // any query leaves the machine.
    const std::string host = std::string(70, 'a') + ".invalid";
    std::error_code ec;
    TcpSocket socket;
    const Clock::duration elapsed = timed([&] { socket = TcpSocket::connect({host, 80}, 2s, ec); });
    CPPUNIT_ASSERT_MESSAGE("connect to an unresolvable host succeeded", static_cast<bool>(ec));
    CPPUNIT_ASSERT(!socket.isOpen());
    CPPUNIT_ASSERT_MESSAGE(elapsedText(elapsed), elapsed < generous(5s));
  }

  void testSocketOptions() {
    ConnectedPair pair = connectPair();
    using evchan::test::HostSocketOption;
    using evchan::test::readHostSocketOption;
    for (TcpSocket* socket : {&pair.client, &pair.server}) {
      CPPUNIT_ASSERT_MESSAGE("OS socket not found",
                             readHostSocketOption(*socket, HostSocketOption::noDelay) >= 0);
      std::error_code ec;
      socket->setNoDelay(true, ec);
      ASSERT_NO_ERROR(ec);
      CPPUNIT_ASSERT_EQUAL(1, readHostSocketOption(*socket, HostSocketOption::noDelay));
      socket->setNoDelay(false);
      CPPUNIT_ASSERT_EQUAL(0, readHostSocketOption(*socket, HostSocketOption::noDelay));
      socket->setKeepAlive(true, ec);
      ASSERT_NO_ERROR(ec);
      CPPUNIT_ASSERT_EQUAL(1, readHostSocketOption(*socket, HostSocketOption::keepAlive));
      socket->setKeepAlive(false);
      CPPUNIT_ASSERT_EQUAL(0, readHostSocketOption(*socket, HostSocketOption::keepAlive));
    }
  }

  void testAddressesOfConnectedPair() {
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    listener.setTimeout(5s);
    TcpSocket client = TcpSocket::connect({"127.0.0.1", listener.port()}, 5s);
    TcpSocket server = listener.accept();

    const Address clientLocal = client.localAddress(), clientPeer = client.peerAddress();
    CPPUNIT_ASSERT_EQUAL(std::string("127.0.0.1:") + std::to_string(listener.port()), clientPeer.toString());
    CPPUNIT_ASSERT(clientPeer.family() == AddressFamily::IPv4);
    CPPUNIT_ASSERT_EQUAL(std::string("127.0.0.1"), clientLocal.host());
    CPPUNIT_ASSERT(clientLocal.family() == AddressFamily::IPv4);
    CPPUNIT_ASSERT(clientLocal.port() > 0);
    CPPUNIT_ASSERT_EQUAL(clientPeer.toString(), server.localAddress().toString());
    CPPUNIT_ASSERT_EQUAL(clientLocal.toString(), server.peerAddress().toString());
    CPPUNIT_ASSERT(clientPeer == server.localAddress() && clientLocal == server.peerAddress());
  }

 private:
  static void checkEchoRoundTrip(const std::string& host, AddressFamily family) {
    ConnectedPair pair = connectPair(host);
    setTimeouts(pair, 5s);
    CPPUNIT_ASSERT(pair.client.peerAddress().family() == family);
    auto server = std::async(std::launch::async, [&] { echoUntilEndOfStream(pair.server); });

    // Small enough for the socket buffers: the client writes it all before
    // reading the echo.
    std::vector<char> message(16 * 1024);
    evchan::test::fillPattern(message.data(), message.size(), 0);
    pair.client.writeAll(message.data(), message.size());
    pair.client.shutdownWrite();
    std::vector<char> echoed(message.size());
    const std::size_t n = pair.client.readExactly(echoed.data(), echoed.size());
    server.get();
    CPPUNIT_ASSERT_EQUAL(message.size(), n);
    CPPUNIT_ASSERT_MESSAGE("echoed bytes differ", message == echoed);
    // The server closed after echoing: nothing more.
    std::error_code ec;
    pair.client.readSome(echoed.data(), echoed.size(), ec);
    ASSERT_ERROR(Errc::end_of_stream, ec);
  }

  static void expectTransfer(TcpSocket& from, TcpSocket& to, const std::string& text) {
    from.writeAll(text.data(), text.size());
    std::string received(text.size(), '\0');
    CPPUNIT_ASSERT_EQUAL(text.size(), to.readExactly(received.data(), received.size()));
    CPPUNIT_ASSERT_EQUAL(text, received);
  }

  static void assertEveryCallIsNotOpen(TcpSocket& socket) {
    char buffer[4] = {};
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, socket.readSome(buffer, sizeof buffer, ec));
    ASSERT_ERROR(Errc::not_open, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, socket.readExactly(buffer, sizeof buffer, ec));
    ASSERT_ERROR(Errc::not_open, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, socket.writeAll(buffer, sizeof buffer, ec));
    ASSERT_ERROR(Errc::not_open, ec);
    socket.shutdownWrite(ec);
    ASSERT_ERROR(Errc::not_open, ec);
    socket.setNoDelay(true, ec);
    ASSERT_ERROR(Errc::not_open, ec);
    socket.setKeepAlive(true, ec);
    ASSERT_ERROR(Errc::not_open, ec);
    socket.setTimeout(1s, ec);
    ASSERT_ERROR(Errc::not_open, ec);
    CPPUNIT_ASSERT(socket.localAddress(ec).empty());
    ASSERT_ERROR(Errc::not_open, ec);
    CPPUNIT_ASSERT(socket.peerAddress(ec).empty());
    ASSERT_ERROR(Errc::not_open, ec);
    CPPUNIT_ASSERT_THROW(socket.readSome(buffer, sizeof buffer), SystemError);
    CPPUNIT_ASSERT_THROW(socket.writeAll(buffer, sizeof buffer), SystemError);
    CPPUNIT_ASSERT_THROW(socket.shutdownWrite(), SystemError);
    CPPUNIT_ASSERT_THROW(socket.localAddress(), SystemError);
    CPPUNIT_ASSERT_THROW(socket.peerAddress(), SystemError);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(TcpSocketTest);
