// SPDX-License-Identifier: Apache-2.0
// Tests of UdpSocket: datagrams between threads and between tasks over
// loopback, truncation reported, ICMP port unreachable as
// connection_refused, IPv6, timeouts, cancel() and close() from another
// thread, bad input, broadcast and multicast.  Portable (Windows too).
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <future>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "support/cancel_race.h"
#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/skip.h"
#include "support/slowdown.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::Address;
using evchan::AddressFamily;
using evchan::Duration;
using evchan::Errc;
using evchan::EventChannel;
using evchan::SystemError;
using evchan::TaskHandle;
using evchan::UdpSocket;

const std::error_code kCancelled = std::make_error_code(std::errc::operation_canceled);

UdpSocket boundSocket(const char* host = "127.0.0.1", AddressFamily family = AddressFamily::IPv4) {
  UdpSocket socket = UdpSocket::open(family);
  socket.bind(Address::fromNumeric(host, 0, family));
  return socket;
}

// A UDP port nothing is bound to (bound, then closed again).
Address unusedUdpAddress() {
  UdpSocket socket = boundSocket();
  return socket.localAddress();
}

// Waits until `running` is set and then a little, so that the call on the
// other thread is (most likely) waiting; correctness does not depend on it.
void settle(const std::atomic<bool>& running) {
  CPPUNIT_ASSERT(evchan::test::eventually([&] { return running.load(); }));
  std::this_thread::sleep_for(50ms);
}

// The datagrams of the bulk test: a header (sequence, payload size, FNV-1a
// of the payload) and a payload whose bytes depend on the sequence.
struct DatagramHeader {
  std::uint32_t sequence;
  std::uint32_t size;
  std::uint64_t checksum;
};
constexpr std::size_t kMaxPayload = 1400;
constexpr std::uint32_t kWindow = 64;  // datagrams in flight before the sender waits for an ack

// Datagrams in one bulk case: 100,000, or 20,000 on a host that slowdown()
// says is slow (under Wine about half a millisecond a datagram; sanitizers,
// valgrind).  20,000 still send every payload size (0..1399, see
// buildDatagram) 14 times over and fill the window 312 times.
std::uint32_t bulkCount() { return evchan::test::slowdown() > 1 ? 20000 : 100000; }

std::size_t buildDatagram(std::uint32_t sequence, unsigned char* out) {
  const std::uint32_t size = (sequence * 7919u) % kMaxPayload;  // 0..1399: empty payloads too
  unsigned char* payload = out + sizeof(DatagramHeader);
  evchan::test::fillPattern(payload, size, std::uint64_t(sequence) * 4096);
  const DatagramHeader header{sequence, size, evchan::test::checksum(evchan::test::kChecksumSeed, payload, size)};
  std::memcpy(out, &header, sizeof header);
  return sizeof header + size;
}

struct BulkResult {
  std::uint32_t received = 0;
  std::uint32_t lost = 0;
  std::uint32_t corrupt = 0;
  std::uint32_t outOfOrder = 0;
  std::string error;
};

// Receives `count` datagrams, checking each, and acks every kWindow-th
// (and the last) with the next sequence it expects.
void receiveBulk(UdpSocket& socket, std::uint32_t count, BulkResult& result) {
  std::vector<unsigned char> buffer(sizeof(DatagramHeader) + kMaxPayload + 64);
  std::uint32_t expected = 0;
  while (expected < count) {
    Address from;
    std::error_code ec;
    const std::size_t n = socket.receiveFrom(buffer.data(), buffer.size(), from, ec);
    if (ec) {
      result.error = "receive after " + std::to_string(expected) + ": " + ec.message();
      result.lost = count - expected;
      return;
    }
    DatagramHeader header;
    if (n < sizeof header) {
      ++result.corrupt;
      continue;
    }
    std::memcpy(&header, buffer.data(), sizeof header);
    const unsigned char* payload = buffer.data() + sizeof header;
    if (n != sizeof header + header.size ||
        evchan::test::checksum(evchan::test::kChecksumSeed, payload, header.size) != header.checksum) {
      ++result.corrupt;
    }
    if (header.sequence != expected) {
      if (header.sequence < expected) ++result.outOfOrder; else result.lost += header.sequence - expected;
    }
    if (header.sequence >= expected) expected = header.sequence + 1;
    ++result.received;
    if (expected % kWindow == 0 || expected == count) {
      const std::uint32_t ack = expected;
      socket.sendTo(&ack, sizeof ack, from, ec);
      if (ec) {
        result.error = "ack: " + ec.message();
        return;
      }
    }
  }
}

// Sends `count` datagrams to `to`, at most kWindow ahead of the acks.
std::string sendBulk(UdpSocket& socket, const Address& to, std::uint32_t count) {
  std::vector<unsigned char> buffer(sizeof(DatagramHeader) + kMaxPayload);
  std::uint32_t acked = 0;
  for (std::uint32_t sequence = 0; sequence < count; ++sequence) {
    std::error_code ec;
    const std::size_t size = buildDatagram(sequence, buffer.data());
    if (socket.sendTo(buffer.data(), size, to, ec) != size || ec) return "send " + std::to_string(sequence) + ": " + ec.message();
    while (sequence + 1 - acked >= kWindow || (sequence + 1 == count && acked < count)) {
      std::uint32_t ack = 0;
      if (socket.receive(&ack, sizeof ack, ec) != sizeof ack || ec) {
        return "ack after " + std::to_string(sequence) + " (a datagram lost?): " + ec.message();
      }
      if (ack > acked) acked = ack;
    }
  }
  return {};
}

// Datagrams allowed unread at once in the shared-socket cases: few enough
// (16 of at most 1.4 KB) for any host's default receive buffer, so that
// loopback drops none and every one can be counted.
constexpr int kShareWindow = 16;

// Takes one of `credits` (the room left under kShareWindow), waiting (a
// task yields, a thread too) until the receiver gives one back.
void takeCredit(std::atomic<int>& credits) {
  for (;;) {
    int left = credits.load();
    if (left > 0 && credits.compare_exchange_weak(left, left - 1)) return;
    evchan::this_task::yield();
  }
}

// UdpSocket as the reader and writer of CancelRace (support/cancel_race.h):
// one-byte datagrams, each to be received once and in order.
struct DatagramReader {
  UdpSocket& socket;
  std::size_t readSome(void* buffer, std::size_t size, std::error_code& ec) { return socket.receive(buffer, size, ec); }
  void cancel() { socket.cancel(); }
};
struct DatagramWriter {
  UdpSocket& socket;
  Address to;
  void writeAll(const void* buffer, std::size_t size) {
    CPPUNIT_ASSERT_EQUAL(size, socket.sendTo(buffer, size, to));
  }
};

class UdpSocketTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(UdpSocketTest);
  CPPUNIT_TEST(testSendToAndReceiveFromNameThePeers);
  CPPUNIT_TEST(testConnectedSocketSendsAndReceives);
  CPPUNIT_TEST(testEmptyDatagram);
  CPPUNIT_TEST(testLargestDatagram);
  CPPUNIT_TEST(testTruncationIsReportedWithTheBytesThatFit);
  CPPUNIT_TEST(testPortUnreachableIsConnectionRefused);
  CPPUNIT_TEST(testIPv6Loopback);
  CPPUNIT_TEST(testIPv4MappedSenderReadsAsIPv4);
  CPPUNIT_TEST(testBindToEndpoint);
  CPPUNIT_TEST(testReceiveTimesOut);
  CPPUNIT_TEST(testCancelFromAnotherThread);
  CPPUNIT_TEST(testCloseFromAnotherThread);
  CPPUNIT_TEST(testCancelRacingArrivingDatagramsOnThread);
  CPPUNIT_TEST(testCancelRacingArrivingDatagramsInTask);
  CPPUNIT_TEST(testBadInputGetsClearErrors);
  CPPUNIT_TEST(testTooLargeDatagramIsRefused);
  CPPUNIT_TEST(testBroadcastOption);
  CPPUNIT_TEST(testMulticastOnLoopback);
  CPPUNIT_TEST(testBulkDatagramsBetweenThreads);
  CPPUNIT_TEST(testBulkDatagramsBetweenTasks);
  CPPUNIT_TEST(testTaskReceiveCancelledFromAnotherThread);
  CPPUNIT_TEST(testTaskReceiveTimesOutAndSeesTruncation);
  CPPUNIT_TEST(testThreadsAndTasksSendOnOneSocketAtOnce);
  CPPUNIT_TEST(testTwoThreadsReceiveOnOneSocketAtOnce);
  CPPUNIT_TEST(testTwoTasksReceivingOnOneSocketTakeTurns);
  CPPUNIT_TEST(testAddressesAskedFromManyThreadsAtOnce);
  CPPUNIT_TEST_SUITE_END();

 public:
  void testSendToAndReceiveFromNameThePeers() {
    UdpSocket a = boundSocket();
    UdpSocket b = boundSocket();
    b.setTimeout(5s);
    CPPUNIT_ASSERT_EQUAL(std::size_t(5), a.sendTo("hello", 5, b.localAddress()));
    char buffer[16];
    Address from;
    CPPUNIT_ASSERT_EQUAL(std::size_t(5), b.receiveFrom(buffer, sizeof buffer, from));
    CPPUNIT_ASSERT_EQUAL(std::string("hello"), std::string(buffer, 5));
    CPPUNIT_ASSERT_EQUAL(a.localAddress().toString(), from.toString());
    CPPUNIT_ASSERT(from.family() == AddressFamily::IPv4);
    // And back to the address receiveFrom() reported.
    a.setTimeout(5s);
    b.sendTo("back", 4, from);
    CPPUNIT_ASSERT_EQUAL(std::size_t(4), a.receiveFrom(buffer, sizeof buffer, from));
    CPPUNIT_ASSERT_EQUAL(b.localAddress().toString(), from.toString());
  }

  void testConnectedSocketSendsAndReceives() {
    UdpSocket server = boundSocket();
    UdpSocket client = UdpSocket::open(AddressFamily::IPv4);
    std::error_code ec;
    // No peer: send() is not_connected (udp_socket.h), whatever the
    // system calls it (EDESTADDRREQ on Linux).
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), client.send("x", 1, ec));
    ASSERT_ERROR(std::errc::not_connected, ec);
    client.peerAddress(ec);
    ASSERT_ERROR(std::errc::not_connected, ec);
    client.connect(server.localAddress());
    CPPUNIT_ASSERT_EQUAL(server.localAddress().toString(), client.peerAddress().toString());
    CPPUNIT_ASSERT(client.localAddress().port() != 0);  // connect() bound it
    client.send("ping", 4);
    server.setTimeout(5s);
    char buffer[8];
    Address from;
    CPPUNIT_ASSERT_EQUAL(std::size_t(4), server.receiveFrom(buffer, sizeof buffer, from));
    CPPUNIT_ASSERT_EQUAL(std::string("ping"), std::string(buffer, 4));
    CPPUNIT_ASSERT_EQUAL(client.localAddress().toString(), from.toString());
    server.sendTo("pong", 4, from);
    client.setTimeout(5s);
    CPPUNIT_ASSERT_EQUAL(std::size_t(4), client.receive(buffer, sizeof buffer));
    CPPUNIT_ASSERT_EQUAL(std::string("pong"), std::string(buffer, 4));
    // A connected socket receives only from its peer.
    UdpSocket stranger = boundSocket();
    stranger.sendTo("nope", 4, client.localAddress());
    client.setTimeout(100ms);
    client.receive(buffer, sizeof buffer, ec);
    ASSERT_ERROR(std::errc::timed_out, ec);
    // connect() again changes the peer: sends go to the new one, and only
    // its datagrams arrive.
    UdpSocket second = boundSocket();
    second.setTimeout(5s);
    client.connect(second.localAddress());
    CPPUNIT_ASSERT_EQUAL(second.localAddress().toString(), client.peerAddress().toString());
    client.send("new", 3);
    CPPUNIT_ASSERT_EQUAL(std::size_t(3), second.receiveFrom(buffer, sizeof buffer, from));
    CPPUNIT_ASSERT_EQUAL(std::string("new"), std::string(buffer, 3));
    CPPUNIT_ASSERT_EQUAL(client.localAddress().toString(), from.toString());
    server.sendTo("old", 3, client.localAddress());
    second.sendTo("two", 3, client.localAddress());
    client.setTimeout(5s);
    CPPUNIT_ASSERT_EQUAL(std::size_t(3), client.receive(buffer, sizeof buffer));
    CPPUNIT_ASSERT_EQUAL(std::string("two"), std::string(buffer, 3));
  }

  void testEmptyDatagram() {
    UdpSocket a = boundSocket();
    UdpSocket b = boundSocket();
    b.setTimeout(5s);
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), a.sendTo(nullptr, 0, b.localAddress()));
    a.sendTo("after", 5, b.localAddress());
    char buffer[8];
    Address from;
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), b.receiveFrom(buffer, sizeof buffer, from, ec));
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT_EQUAL(a.localAddress().toString(), from.toString());
    CPPUNIT_ASSERT_EQUAL(std::size_t(5), b.receive(buffer, sizeof buffer));
    CPPUNIT_ASSERT_EQUAL(std::string("after"), std::string(buffer, 5));
    // A zero-size buffer: an empty datagram fits, a longer one is cut to
    // nothing and says so.
    a.sendTo(nullptr, 0, b.localAddress());
    a.sendTo("lost", 4, b.localAddress());
    a.sendTo("kept", 4, b.localAddress());
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), b.receiveFrom(nullptr, 0, from, ec));
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), b.receiveFrom(nullptr, 0, from, ec));
    ASSERT_ERROR(std::errc::message_size, ec);
    CPPUNIT_ASSERT_EQUAL(a.localAddress().toString(), from.toString());
    CPPUNIT_ASSERT_EQUAL(std::size_t(4), b.receive(buffer, sizeof buffer, ec));
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT_EQUAL(std::string("kept"), std::string(buffer, 4));
  }

  // The largest IPv4 datagram (65,507 bytes) goes and arrives whole; one
  // byte more is message_size, and nothing is sent.
  void testLargestDatagram() {
    UdpSocket a = boundSocket();
    UdpSocket b = boundSocket();
    b.setTimeout(5s);
    std::vector<unsigned char> out(65508), in(70000);
    evchan::test::fillPattern(out.data(), out.size(), 77);
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), a.sendTo(out.data(), 65508, b.localAddress(), ec));
    ASSERT_ERROR(std::errc::message_size, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t(65507), a.sendTo(out.data(), 65507, b.localAddress()));
    Address from;
    CPPUNIT_ASSERT_EQUAL(std::size_t(65507), b.receiveFrom(in.data(), in.size(), from, ec));
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT(std::memcmp(in.data(), out.data(), 65507) == 0);
    // Nothing else queued: the 65,508-byte one never left.
    b.setTimeout(100ms);
    b.receive(in.data(), in.size(), ec);
    ASSERT_ERROR(std::errc::timed_out, ec);
  }

  void testTruncationIsReportedWithTheBytesThatFit() {
    UdpSocket a = boundSocket();
    UdpSocket b = boundSocket();
    b.setTimeout(5s);
    std::vector<unsigned char> big(1000);
    evchan::test::fillPattern(big.data(), big.size(), 0);
    a.sendTo(big.data(), big.size(), b.localAddress());
    a.sendTo("next", 4, b.localAddress());
    unsigned char small[100];
    Address from;
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(sizeof small, b.receiveFrom(small, sizeof small, from, ec));
    ASSERT_ERROR(std::errc::message_size, ec);
    CPPUNIT_ASSERT(std::memcmp(small, big.data(), sizeof small) == 0);
    CPPUNIT_ASSERT_EQUAL(a.localAddress().toString(), from.toString());
    // The rest of the cut datagram is gone; the next one is whole.
    CPPUNIT_ASSERT_EQUAL(std::size_t(4), b.receive(small, sizeof small, ec));
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT_EQUAL(std::string("next"), std::string(reinterpret_cast<char*>(small), 4));
    // The throwing form throws, the bytes delivered all the same.
    a.sendTo(big.data(), big.size(), b.localAddress());
    std::memset(small, 0, sizeof small);
    try {
      b.receiveFrom(small, 10, from);
      CPPUNIT_FAIL("a truncated datagram must throw");
    } catch (const SystemError& e) {
      ASSERT_ERROR(std::errc::message_size, e.code());
      CPPUNIT_ASSERT_EQUAL(std::string("receive"), e.operation());
      CPPUNIT_ASSERT_EQUAL(a.localAddress().toString(), e.peer());
    }
    CPPUNIT_ASSERT(std::memcmp(small, big.data(), 10) == 0);
  }

  void testPortUnreachableIsConnectionRefused() {
    const Address nobody = unusedUdpAddress();
    UdpSocket client = UdpSocket::open(AddressFamily::IPv4);
    client.connect(nobody);
    client.setTimeout(2s);
    std::error_code ec;
    char buffer[4];
    // The ICMP error comes back after the send; the next call reports it
    // (a send may also be the call that sees it).
    for (int round = 0; round < 5 && ec != std::errc::connection_refused; ++round) {
      client.send("ping", 4, ec);
      if (!ec) client.receive(buffer, sizeof buffer, ec);
    }
    ASSERT_ERROR(std::errc::connection_refused, ec);
    try {
      client.send("ping", 4);
      client.receive(buffer, sizeof buffer);
      CPPUNIT_FAIL("connection_refused must throw");
    } catch (const SystemError& e) {
      ASSERT_ERROR(std::errc::connection_refused, e.code());
      CPPUNIT_ASSERT_EQUAL(nobody.toString(), e.peer());
    }
  }

  void testIPv6Loopback() {
    std::error_code ec;
    UdpSocket a = UdpSocket::open(AddressFamily::IPv6, ec);
    if (!ec) a.bind(Address::fromNumeric("::1", 0, AddressFamily::IPv6), ec);
    if (ec) EVCHAN_SKIP("no IPv6 loopback: " + ec.message());
    UdpSocket b = boundSocket("::1", AddressFamily::IPv6);
    b.setTimeout(5s);
    a.sendTo("six", 3, b.localAddress());
    char buffer[8];
    Address from;
    CPPUNIT_ASSERT_EQUAL(std::size_t(3), b.receiveFrom(buffer, sizeof buffer, from));
    CPPUNIT_ASSERT_EQUAL(std::string("six"), std::string(buffer, 3));
    CPPUNIT_ASSERT(from.family() == AddressFamily::IPv6);
    CPPUNIT_ASSERT_EQUAL(std::string("::1"), from.host());
    CPPUNIT_ASSERT_EQUAL(a.localAddress().port(), from.port());
    // An IPv4 destination on an IPv6-only... or a dual-stack socket: either
    // way a clear answer, never a crash.
    a.sendTo("x", 1, Address::fromNumeric("127.0.0.1", b.localAddress().port(), AddressFamily::IPv4), ec);
    std::printf("IPv4 destination on an IPv6 socket: %s\n", ec ? ec.message().c_str() : "sent");
  }

  // docs/udp.md: "IPv4-mapped senders read as IPv4".  An IPv6 socket on
  // "::" that also takes IPv4 (a dual-stack host) reports an IPv4 sender
  // as 127.0.0.1, to which it can answer.
  void testIPv4MappedSenderReadsAsIPv4() {
    std::error_code ec;
    UdpSocket dual = UdpSocket::open(AddressFamily::IPv6, ec);
    if (!ec) dual.bind(Address::fromNumeric("::", 0, AddressFamily::IPv6), ec);
    if (ec) EVCHAN_SKIP("no IPv6: " + ec.message());
    UdpSocket v4 = boundSocket();
    const Address target = Address::fromNumeric("127.0.0.1", dual.localAddress().port(), AddressFamily::IPv4);
    v4.sendTo("mapped", 6, target);
    dual.setTimeout(500ms);
    char buffer[8];
    Address from;
    const std::size_t n = dual.receiveFrom(buffer, sizeof buffer, from, ec);
    if (ec == std::errc::timed_out) EVCHAN_SKIP("this host's IPv6 sockets take no IPv4 (IPV6_V6ONLY)");
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT_EQUAL(std::string("mapped"), std::string(buffer, n));
    CPPUNIT_ASSERT(from.family() == AddressFamily::IPv4);
    CPPUNIT_ASSERT_EQUAL(v4.localAddress().toString(), from.toString());
  }

  void testBindToEndpoint() {
    UdpSocket socket = UdpSocket::open(AddressFamily::IPv4);
    socket.bind(evchan::Endpoint{"127.0.0.1", 0});
    CPPUNIT_ASSERT_EQUAL(std::string("127.0.0.1"), socket.localAddress().host());
    CPPUNIT_ASSERT(socket.localAddress().port() != 0);
    UdpSocket other = UdpSocket::open(AddressFamily::IPv4);
    std::error_code ec;
    other.bind(socket.localAddress(), ec);
    ASSERT_ERROR(std::errc::address_in_use, ec);
  }

  void testReceiveTimesOut() {
    UdpSocket socket = boundSocket();
    socket.setTimeout(100ms);
    char buffer[4];
    std::error_code ec;
    const auto start = std::chrono::steady_clock::now();
    socket.receive(buffer, sizeof buffer, ec);
    const auto waited = std::chrono::steady_clock::now() - start;
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT(waited >= 90ms);
    CPPUNIT_ASSERT(waited < evchan::test::generous(5s));
    socket.setTimeout(Duration::zero());
    const auto zeroWaited = evchan::test::timed([&] { socket.receive(buffer, sizeof buffer, ec); });
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::elapsedText(zeroWaited), zeroWaited < evchan::test::generous(1s));
    socket.setTimeout(-1ms, ec);
    ASSERT_ERROR(Errc::negative_timeout, ec);
    CPPUNIT_ASSERT(socket.timeout() == Duration::zero());
  }

  void testCancelFromAnotherThread() {
    UdpSocket socket = boundSocket();
    std::atomic<bool> running{false};
    std::error_code ec;
    auto waiter = std::async(std::launch::async, [&] {
      char buffer[4];
      running = true;
      socket.receive(buffer, sizeof buffer, ec);
    });
    settle(running);
    // Still waiting: an error that came before the cancel is no proof.
    CPPUNIT_ASSERT_MESSAGE(ec.message(), waiter.wait_for(0ms) == std::future_status::timeout);
    // Repeated: on a loaded machine the receive may not wait yet after the
    // settling sleep, and a cancel() before a call begins is no cancel.
    CPPUNIT_ASSERT_MESSAGE("cancel() did not end the receive", evchan::test::eventually([&] {
                             socket.cancel();
                             return waiter.wait_for(0ms) == std::future_status::ready;
                           }));
    waiter.get();
    ASSERT_ERROR(kCancelled, ec);
    // Still open: the next receive gets the next datagram.
    CPPUNIT_ASSERT(socket.isOpen());
    UdpSocket sender = boundSocket();
    sender.sendTo("ok", 2, socket.localAddress());
    socket.setTimeout(5s);
    char buffer[4];
    CPPUNIT_ASSERT_EQUAL(std::size_t(2), socket.receive(buffer, sizeof buffer));
  }

  void testCloseFromAnotherThread() {
    UdpSocket socket = boundSocket();
    std::atomic<bool> running{false};
    std::error_code ec;
    auto waiter = std::async(std::launch::async, [&] {
      char buffer[4];
      running = true;
      socket.receive(buffer, sizeof buffer, ec);
    });
    settle(running);
    CPPUNIT_ASSERT_MESSAGE(ec.message(), waiter.wait_for(0ms) == std::future_status::timeout);
    socket.close();
    CPPUNIT_ASSERT_MESSAGE("close() did not end the receive",
                           waiter.wait_for(evchan::test::generous(5s)) == std::future_status::ready);
    waiter.get();
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == kCancelled || ec == Errc::not_open);
    CPPUNIT_ASSERT(!socket.isOpen());
    char buffer[4];
    socket.receive(buffer, sizeof buffer, ec);
    ASSERT_ERROR(Errc::not_open, ec);
  }

  // A datagram sent and the receive cancelled at once, 2,000 times: a
  // cancel never loses a datagram that arrived, nor delivers one twice.
  void testCancelRacingArrivingDatagramsOnThread() {
    UdpSocket receiver = boundSocket();
    UdpSocket sender = boundSocket();
    receiver.setTimeout(evchan::test::generous(10s));
    evchan::test::CancelRace race(2000);
    DatagramReader reader{receiver};
    DatagramWriter writer{sender, receiver.localAddress()};
    std::thread receiving([&] { race.read(reader); });
    race.writeAndCancel(writer, reader);
    race.stopped = true;
    receiving.join();
    CPPUNIT_ASSERT_MESSAGE(race.wrong, race.wrong.empty());
    CPPUNIT_ASSERT_EQUAL(race.rounds, race.received.load());
  }

  void testCancelRacingArrivingDatagramsInTask() {
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
    UdpSocket receiver = boundSocket();
    UdpSocket sender = boundSocket();
    receiver.setTimeout(evchan::test::generous(10s));
    evchan::test::CancelRace race(2000);
    DatagramReader reader{receiver};
    DatagramWriter writer{sender, receiver.localAddress()};
    std::error_code spawned;
    TaskHandle receiving = channel->spawn([&] { race.read(reader); }, {}, spawned);
    if (spawned == std::errc::function_not_supported) EVCHAN_SKIP("no tasks in this build");
    race.writeAndCancel(writer, reader);
    evchan::test::joinWithin(receiving, 30s);
    CPPUNIT_ASSERT_MESSAGE(race.wrong, race.wrong.empty());
    CPPUNIT_ASSERT_EQUAL(race.rounds, race.received.load());
  }

  void testBadInputGetsClearErrors() {
    std::error_code ec;
    UdpSocket closed;
    char buffer[4];
    Address from;
    closed.receive(buffer, sizeof buffer, ec);
    ASSERT_ERROR(Errc::not_open, ec);
    closed.sendTo("x", 1, Address::fromNumeric("127.0.0.1", 9, AddressFamily::IPv4), ec);
    ASSERT_ERROR(Errc::not_open, ec);
    closed.bind(Address::fromNumeric("127.0.0.1", 0, AddressFamily::IPv4), ec);
    ASSERT_ERROR(Errc::not_open, ec);
    closed.connect(Address::fromNumeric("127.0.0.1", 9, AddressFamily::IPv4), ec);
    ASSERT_ERROR(Errc::not_open, ec);
    closed.localAddress(ec);
    ASSERT_ERROR(Errc::not_open, ec);
    closed.setBroadcast(true, ec);
    ASSERT_ERROR(Errc::not_open, ec);
    closed.joinGroup(Address::fromNumeric("239.1.2.3", 0, AddressFamily::IPv4), Address(), ec);
    ASSERT_ERROR(Errc::not_open, ec);
    CPPUNIT_ASSERT_THROW(closed.send("x", 1), SystemError);
    closed.setTimeout(1s, ec);
    ASSERT_ERROR(Errc::not_open, ec);
    CPPUNIT_ASSERT(closed.timeout() == evchan::kInfiniteTimeout);
    closed.peerAddress(ec);
    ASSERT_ERROR(Errc::not_open, ec);
    closed.cancel();
    closed.close();

    UdpSocket::open(AddressFamily::Unspecified, ec);
    ASSERT_ERROR(std::errc::invalid_argument, ec);

    UdpSocket socket = boundSocket();
    socket.receive(nullptr, 4, ec);
    ASSERT_ERROR(Errc::null_buffer, ec);
    socket.sendTo(nullptr, 4, socket.localAddress(), ec);
    ASSERT_ERROR(Errc::null_buffer, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), socket.sendTo("x", 1, Address(), ec));
    ASSERT_ERROR(Errc::no_address, ec);  // udp_socket.h: an empty `to` is no_address
    // Connected too: sendTo() never falls back to the peer silently.
    UdpSocket peer = boundSocket();
    peer.setTimeout(200ms);
    socket.connect(peer.localAddress());
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), socket.sendTo("x", 1, Address(), ec));
    ASSERT_ERROR(Errc::no_address, ec);
    peer.receive(buffer, sizeof buffer, ec);
    ASSERT_ERROR(std::errc::timed_out, ec);  // nothing went
    socket.sendTo("x", 1, Address::fromNumeric("127.0.0.1", 70000, AddressFamily::IPv4), ec);
    ASSERT_ERROR(Errc::port_out_of_range, ec);
    socket.sendTo("x", 1, Address::fromNumeric("not.numeric", 9, AddressFamily::IPv4), ec);
    ASSERT_ERROR(std::errc::invalid_argument, ec);
    socket.connect(Address(), ec);
    ASSERT_ERROR(Errc::no_address, ec);
    socket.bind(Address::fromNumeric("127.0.0.1", -1, AddressFamily::IPv4), ec);
    ASSERT_ERROR(Errc::port_out_of_range, ec);
    socket.joinGroup(Address(), Address(), ec);
    ASSERT_ERROR(Errc::no_address, ec);
  }

  void testTooLargeDatagramIsRefused() {
    UdpSocket socket = boundSocket();
    std::vector<char> huge(70000, 'x');
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), socket.sendTo(huge.data(), huge.size(), socket.localAddress(), ec));
    ASSERT_ERROR(std::errc::message_size, ec);
    try {
      socket.sendTo(huge.data(), huge.size(), socket.localAddress());
      CPPUNIT_FAIL("a datagram over 64 KiB must throw");
    } catch (const SystemError& e) {
      ASSERT_ERROR(std::errc::message_size, e.code());
      CPPUNIT_ASSERT_EQUAL(std::string("send to"), e.operation());
      CPPUNIT_ASSERT_EQUAL(socket.localAddress().toString(), e.peer());
    }
  }

  void testBroadcastOption() {
    UdpSocket socket = UdpSocket::open(AddressFamily::IPv4);
    const Address broadcast = Address::fromNumeric("255.255.255.255", 9, AddressFamily::IPv4);
    std::error_code ec;
    socket.sendTo("x", 1, broadcast, ec);
    CPPUNIT_ASSERT_MESSAGE("a broadcast without SO_BROADCAST must fail", ec);
    socket.setBroadcast(true);
    socket.sendTo("x", 1, broadcast, ec);
    // Allowed now; a host without a broadcast route still says so clearly.
    std::printf("broadcast with SO_BROADCAST: %s\n", ec ? ec.message().c_str() : "sent");
    CPPUNIT_ASSERT(!ec || ec != std::errc::permission_denied);
    socket.setBroadcast(false);
  }

  void testMulticastOnLoopback() {
    bool any = false;
    any = multicastRound(AddressFamily::IPv4, "239.255.42.99", "127.0.0.1") || any;
    any = multicastRound(AddressFamily::IPv6, "ff15::4242", "::1") || any;
    if (!any) EVCHAN_SKIP("no multicast over loopback on this host");
  }

  void testBulkDatagramsBetweenThreads() {
    UdpSocket receiver = boundSocket();
    UdpSocket sender = boundSocket();
    receiver.setTimeout(10s);
    sender.setTimeout(10s);
    const std::uint32_t count = bulkCount();
    BulkResult result;
    std::thread receiving([&] { receiveBulk(receiver, count, result); });
    const std::string sendError = sendBulk(sender, receiver.localAddress(), count);
    receiving.join();
    reportBulk("threads", count, result, sendError);
  }

  void testBulkDatagramsBetweenTasks() {
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    UdpSocket receiver = boundSocket();
    UdpSocket sender = boundSocket();
    receiver.setTimeout(10s);
    sender.setTimeout(10s);
    const std::uint32_t count = bulkCount();
    BulkResult result;
    std::string sendError;
    std::error_code ec;
    TaskHandle receiving = channel->spawn([&] { receiveBulk(receiver, count, result); }, {}, ec);
    if (ec == std::errc::function_not_supported) EVCHAN_SKIP("no tasks in this build");
    ASSERT_NO_ERROR(ec);
    TaskHandle sending = channel->spawn([&] { sendError = sendBulk(sender, receiver.localAddress(), count); });
    evchan::test::joinWithin(sending, 120s);
    evchan::test::joinWithin(receiving, 20s);
    reportBulk("tasks", count, result, sendError);
  }

  // Two threads and two tasks send on one socket at once, 500 numbered
  // datagrams each, of every size from 16 bytes to 1.4 KB (at most
  // kShareWindow unread at a time): every datagram arrives once, whole
  // and as sent, none lost, none cut or mixed with another.  The tasks run
  // on two channels: tasks of one channel share the socket's one waiting
  // send (see udp_socket.h), and under Wine the send buffer fills.
  void testThreadsAndTasksSendOnOneSocketAtOnce() {
    constexpr std::uint32_t kEach = 500, kSenders = 4;
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
    std::unique_ptr<EventChannel> otherChannel = evchan::test::makeChannel(1);
    UdpSocket sender = boundSocket();
    UdpSocket receiver = boundSocket();
    sender.setTimeout(evchan::test::generous(10s));
    receiver.setTimeout(evchan::test::generous(10s));
    const Address to = receiver.localAddress();
    std::atomic<int> credits{kShareWindow};
    std::vector<std::string> sendErrors(kSenders);
    auto sendAll = [&](std::uint32_t who) {
      std::vector<unsigned char> buffer(sizeof(DatagramHeader) + kMaxPayload);
      for (std::uint32_t i = 0; i < kEach; ++i) {
        takeCredit(credits);
        const std::size_t size = buildDatagram(who * kEach + i, buffer.data());
        std::error_code ec;
        if (sender.sendTo(buffer.data(), size, to, ec) != size || ec) {
          sendErrors[who] = "sender " + std::to_string(who) + ", datagram " + std::to_string(i) + ": " + ec.message();
          return;
        }
      }
    };
    std::error_code spawned;
    TaskHandle third = channel->spawn([&] { sendAll(2); }, {}, spawned);
    if (spawned == std::errc::function_not_supported) EVCHAN_SKIP("no tasks in this build");
    ASSERT_NO_ERROR(spawned);
    TaskHandle fourth = otherChannel->spawn([&] { sendAll(3); });
    std::thread first(sendAll, 0), second(sendAll, 1);
    std::vector<int> seen(kSenders * kEach, 0);
    std::uint32_t received = 0, damaged = 0;
    std::string receiveError;
    std::vector<unsigned char> buffer(sizeof(DatagramHeader) + kMaxPayload + 64);
    while (received < kSenders * kEach) {
      std::error_code ec;
      const std::size_t n = receiver.receive(buffer.data(), buffer.size(), ec);
      if (ec) {
        receiveError = "receive after " + std::to_string(received) + ": " + ec.message();
        break;
      }
      ++received;
      credits.fetch_add(1);
      DatagramHeader header;
      if (n < sizeof header) {
        ++damaged;
        continue;
      }
      std::memcpy(&header, buffer.data(), sizeof header);
      const unsigned char* payload = buffer.data() + sizeof header;
      if (header.sequence >= seen.size() || n != sizeof header + header.size ||
          evchan::test::checksum(evchan::test::kChecksumSeed, payload, header.size) != header.checksum) {
        ++damaged;
        continue;
      }
      ++seen[header.sequence];
    }
    credits.fetch_add(kSenders * kEach);  // senders left waiting (a datagram lost) finish
    first.join();
    second.join();
    evchan::test::joinWithin(third, evchan::test::generous(20s));
    evchan::test::joinWithin(fourth, evchan::test::generous(20s));
    for (const std::string& error : sendErrors) CPPUNIT_ASSERT_MESSAGE(error, error.empty());
    CPPUNIT_ASSERT_MESSAGE(receiveError, receiveError.empty());
    CPPUNIT_ASSERT_EQUAL(0u, damaged);
    for (std::uint32_t i = 0; i < seen.size(); ++i) CPPUNIT_ASSERT_EQUAL_MESSAGE(std::to_string(i), 1, seen[i]);
  }

  // Two threads wait in receive() on one socket at once: two datagrams
  // sent end both waits, one datagram each, whole.
  void testTwoThreadsReceiveOnOneSocketAtOnce() {
    UdpSocket receiver = boundSocket();
    UdpSocket sender = boundSocket();
    receiver.setTimeout(evchan::test::generous(10s));
    std::atomic<int> waiting{0};
    std::string got[2];
    std::error_code errors[2];
    auto receiveOne = [&](int who) {
      char buffer[64];
      ++waiting;
      const std::size_t n = receiver.receive(buffer, sizeof buffer, errors[who]);
      got[who].assign(buffer, n);
    };
    std::thread first(receiveOne, 0), second(receiveOne, 1);
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return waiting.load() == 2; }));
    const std::string one(40, 'a'), two(40, 'b');
    sender.sendTo(one.data(), one.size(), receiver.localAddress());
    sender.sendTo(two.data(), two.size(), receiver.localAddress());
    first.join();
    second.join();
    ASSERT_NO_ERROR(errors[0]);
    ASSERT_NO_ERROR(errors[1]);
    CPPUNIT_ASSERT((got[0] == one && got[1] == two) || (got[0] == two && got[1] == one));
  }

  // Tasks of one channel that receive on one socket at once take turns
  // (task_turns_test has the rest): both get a datagram, neither fails
  // with Errc::socket_busy.
  // Threads asking a fresh socket for its addresses at the same moment,
  // as senders to it do (sendTo(..., receiver.localAddress())).  APR fills
  // in the address it keeps in the socket the first time it is asked: the
  // threads wrote it together while reading it, a data race ThreadSanitizer
  // reported in adversarial_io_test (in a CI run).  Every answer must be
  // the socket's address; under TSan, no report.
  void testAddressesAskedFromManyThreadsAtOnce() {
    constexpr int kThreads = 4;
    for (int round = 0; round < 50; ++round) {
      UdpSocket socket = boundSocket();
      UdpSocket peer = boundSocket();
      const Address peerAddress = peer.localAddress();
      socket.connect(peerAddress);
      std::atomic<int> ready{0};
      std::atomic<int> wrong{0};
      std::vector<Address> locals(kThreads);
      std::vector<std::thread> threads;
      for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
          ++ready;
          while (ready.load() < kThreads) std::this_thread::yield();
          locals[t] = socket.localAddress();
          if (!(socket.peerAddress() == peerAddress)) ++wrong;
        });
      }
      for (std::thread& thread : threads) thread.join();
      CPPUNIT_ASSERT_EQUAL(0, wrong.load());
      for (const Address& local : locals) {
        CPPUNIT_ASSERT_MESSAGE(local.toString() + " / " + locals[0].toString(), local == locals[0]);
        CPPUNIT_ASSERT(local.port() != 0);
      }
    }
  }

  void testTwoTasksReceivingOnOneSocketTakeTurns() {
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    UdpSocket receiver = boundSocket();
    UdpSocket sender = boundSocket();
    receiver.setTimeout(evchan::test::generous(10s));
    std::atomic<int> started{0};
    std::string got[2];
    std::error_code errors[2];
    auto receiveOne = [&](int who) {
      char buffer[16];
      ++started;
      const std::size_t n = receiver.receive(buffer, sizeof buffer, errors[who]);
      got[who].assign(buffer, n);
    };
    std::error_code spawned;
    TaskHandle first = channel->spawn([&] { receiveOne(0); }, {}, spawned);
    if (spawned == std::errc::function_not_supported) EVCHAN_SKIP("no tasks in this build");
    ASSERT_NO_ERROR(spawned);
    TaskHandle second = channel->spawn([&] { receiveOne(1); });
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return started.load() == 2; }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    sender.sendTo("x", 1, receiver.localAddress());
    sender.sendTo("y", 1, receiver.localAddress());
    evchan::test::joinWithin(first, evchan::test::generous(20s));
    evchan::test::joinWithin(second, evchan::test::generous(20s));
    ASSERT_NO_ERROR(errors[0]);
    ASSERT_NO_ERROR(errors[1]);
    CPPUNIT_ASSERT((got[0] == "x" && got[1] == "y") || (got[0] == "y" && got[1] == "x"));
  }

  void testTaskReceiveCancelledFromAnotherThread() {
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
    UdpSocket socket = boundSocket();
    std::atomic<bool> running{false};
    std::error_code ec;
    std::error_code spawned;
    TaskHandle task = channel->spawn(
        [&] {
          char buffer[4];
          running = true;
          socket.receive(buffer, sizeof buffer, ec);
        },
        {}, spawned);
    if (spawned == std::errc::function_not_supported) EVCHAN_SKIP("no tasks in this build");
    settle(running);
    // The task waits in its event: its worker is free.
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    socket.cancel();
    evchan::test::joinWithin(task);
    ASSERT_ERROR(kCancelled, ec);
    // And close() from another thread ends a task's receive too.
    running = false;
    task = channel->spawn([&] {
      char buffer[4];
      running = true;
      socket.receive(buffer, sizeof buffer, ec);
    });
    settle(running);
    socket.close();
    evchan::test::joinWithin(task);
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == kCancelled || ec == Errc::not_open);
  }

  void testTaskReceiveTimesOutAndSeesTruncation() {
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
    UdpSocket a = boundSocket();
    UdpSocket b = boundSocket();
    std::error_code timedOut, truncated;
    std::size_t delivered = 0;
    Address from;
    std::error_code spawned;
    char buffer[8] = {};
    evchan::test::Clock::duration waited{};
    TaskHandle task = channel->spawn(
        [&] {
          b.setTimeout(50ms);
          waited = evchan::test::timed([&] { b.receive(buffer, sizeof buffer, timedOut); });
          b.setTimeout(5s);
          a.sendTo("0123456789abcdef", 16, b.localAddress());
          delivered = b.receiveFrom(buffer, sizeof buffer, from, truncated);
        },
        {}, spawned);
    if (spawned == std::errc::function_not_supported) EVCHAN_SKIP("no tasks in this build");
    evchan::test::joinWithin(task);
    ASSERT_ERROR(std::errc::timed_out, timedOut);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::elapsedText(waited), waited >= 45ms);
    ASSERT_ERROR(std::errc::message_size, truncated);
    CPPUNIT_ASSERT_EQUAL(std::size_t(8), delivered);
    CPPUNIT_ASSERT_EQUAL(std::string("01234567"), std::string(buffer, 8));
    CPPUNIT_ASSERT_EQUAL(a.localAddress().toString(), from.toString());
  }

 private:
  // How a host says it will not do multicast over loopback: no such
  // interface or address, no route, not allowed, not built (APR without
  // multicast: function_not_supported).  Any other error is a failure,
  // not a reason to skip.
  static bool hostRefusesMulticast(const std::error_code& ec) {
    return ec == std::errc::no_such_device || ec == std::errc::address_not_available ||
           ec == std::errc::network_unreachable || ec == std::errc::host_unreachable ||
           ec == std::errc::function_not_supported || ec == std::errc::operation_not_supported ||
           ec == std::errc::operation_not_permitted || ec == std::errc::permission_denied ||
           ec == std::errc::protocol_not_supported || ec == std::errc::address_family_not_supported;
  }

  // One multicast exchange over loopback; false when the host refuses a
  // step (hostRefusesMulticast(), or the datagram not looped back), which
  // the caller reports as a skip.  Other errors fail the test.
  bool multicastRound(AddressFamily family, const char* group, const char* loopback) {
    std::error_code ec;
    UdpSocket receiver = UdpSocket::open(family, ec);
    if (ec && hostRefusesMulticast(ec)) {
      std::printf("multicast %s: no socket of this family: %s\n", group, ec.message().c_str());
      return false;
    }
    ASSERT_NO_ERROR(ec);
    receiver.setReuseAddress(true);
    receiver.bind(Address::fromNumeric(family == AddressFamily::IPv4 ? "0.0.0.0" : "::", 0, family));
    const Address groupAddress = Address::fromNumeric(group, receiver.localAddress().port(), family);
    const Address interfaceAddress = Address::fromNumeric(loopback, 0, family);
    receiver.joinGroup(groupAddress, interfaceAddress, ec);
    if (ec) {
      std::printf("multicast %s: join refused: %s\n", group, evchan::test::describe(ec).c_str());
      CPPUNIT_ASSERT_MESSAGE("join: " + evchan::test::describe(ec), hostRefusesMulticast(ec));
      return false;
    }
    UdpSocket sender = UdpSocket::open(family);
    sender.setMulticastInterface(interfaceAddress, ec);
    if (!ec) sender.setMulticastLoopback(true, ec);
    if (!ec) sender.sendTo("group", 5, groupAddress, ec);
    if (ec) {
      std::printf("multicast %s over loopback: %s\n", group, evchan::test::describe(ec).c_str());
      CPPUNIT_ASSERT_MESSAGE("send: " + evchan::test::describe(ec), hostRefusesMulticast(ec));
      receiver.leaveGroup(groupAddress, interfaceAddress);
      return false;
    }
    char buffer[8];
    receiver.setTimeout(500ms);
    const std::size_t n = receiver.receive(buffer, sizeof buffer, ec);
    if (ec == std::errc::timed_out) {
      std::printf("multicast %s: nothing looped back in 500 ms\n", group);
#ifdef __linux__
      // Linux loops an IPv4 group's datagram back to a member whenever the
      // join and the send were accepted: nothing here is a broken join.
      CPPUNIT_ASSERT_MESSAGE("joined and sent, but nothing arrived", family != AddressFamily::IPv4);
#endif
      receiver.leaveGroup(groupAddress, interfaceAddress);
      return false;
    }
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t(5), n);
    CPPUNIT_ASSERT_EQUAL(std::string("group"), std::string(buffer, n));
    receiver.leaveGroup(groupAddress, interfaceAddress);
    // Left: the next datagram to the group no longer arrives.
    sender.sendTo("again", 5, groupAddress);
    receiver.setTimeout(200ms);
    receiver.receive(buffer, sizeof buffer, ec);
    ASSERT_ERROR(std::errc::timed_out, ec);
    return true;
  }

  static void reportBulk(const char* between, std::uint32_t count, const BulkResult& result,
                         const std::string& sendError) {
    std::printf("%u datagrams between %s: %u received, %u lost, %u corrupt, %u out of order\n", count, between,
                result.received, result.lost, result.corrupt, result.outOfOrder);
    CPPUNIT_ASSERT_MESSAGE(sendError, sendError.empty());
    CPPUNIT_ASSERT_MESSAGE(result.error, result.error.empty());
    CPPUNIT_ASSERT_EQUAL(count, result.received);
    CPPUNIT_ASSERT_EQUAL(0u, result.lost);
    CPPUNIT_ASSERT_EQUAL(0u, result.corrupt);
    CPPUNIT_ASSERT_EQUAL(0u, result.outOfOrder);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(UdpSocketTest);

}  // namespace
