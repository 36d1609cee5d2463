// SPDX-License-Identifier: Apache-2.0
// UdpSocket and BufferedReader (over TcpSocket) against callers that push
// on their edges: receivers on threads and in tasks of two channels
// sharing one socket, close() racing receives and sends of every kind,
// destinations of the other family, a connected socket sending elsewhere;
// a reader whose stream times out or is cancelled in the middle of a line
// (no byte may be lost), limits at and one past maxBytes with a split
// delimiter, the end of the stream mid-line, zero-size and null reads with
// bytes buffered, and limits far beyond what memory can hold.  Portable
// (Windows too); the Unix-socket cases are in unix_adversarial_test.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/run_where.h"
#include "support/skip.h"
#include "support/slowdown.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::Address;
using evchan::AddressFamily;
using evchan::BufferedReader;
using evchan::Errc;
using evchan::EventChannel;
using evchan::TaskHandle;
using evchan::TcpSocket;
using evchan::UdpSocket;
using evchan::test::generous;
using evchan::test::runWhere;
using evchan::test::spawnOrSkip;

const std::error_code kCancelled = std::make_error_code(std::errc::operation_canceled);

UdpSocket boundUdp(AddressFamily family = AddressFamily::IPv4) {
  UdpSocket socket = UdpSocket::open(family);
  socket.bind(Address::fromNumeric(family == AddressFamily::IPv4 ? "127.0.0.1" : "::1", 0, family));
  return socket;
}

// Skips the test where there are no tasks; for a case that starts threads
// before its task, which a skip thrown later would leave joinable.
void skipWithoutTasks() {
  std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
  spawnOrSkip(*channel, [] {}).join();
}

// A datagram of the sharing test: who sent it, its number, and a payload
// whose length and bytes both follow from those two.
constexpr std::size_t kTag = 8;
std::size_t payloadSize(std::uint32_t sender, std::uint32_t sequence) {
  return (sequence * 131u + sender * 17u) % 700u;
}
std::vector<unsigned char> sharedDatagram(std::uint32_t sender, std::uint32_t sequence) {
  std::vector<unsigned char> out(kTag + payloadSize(sender, sequence));
  std::memcpy(out.data(), &sender, 4);
  std::memcpy(out.data() + 4, &sequence, 4);
  for (std::size_t i = kTag; i < out.size(); ++i) out[i] = static_cast<unsigned char>(sender * 31 + sequence + i);
  return out;
}
constexpr std::uint32_t kStopSender = 0xFFFFFFFFu;

// Records the datagrams that several receivers take from one socket.
struct SharedReceipts {
  std::mutex lock;
  std::set<std::pair<std::uint32_t, std::uint32_t>> seen;
  std::vector<std::string> problems;
  std::atomic<std::uint32_t> received{0};

  void problem(std::string text) {
    const std::lock_guard<std::mutex> hold(lock);
    problems.push_back(std::move(text));
  }

  // Receives until a stop datagram (or an error, which is a problem).
  void receiveUntilStopped(UdpSocket& socket, const char* who) {
    std::vector<unsigned char> buffer(kTag + 800);
    for (;;) {
      Address from;
      std::error_code ec;
      const std::size_t n = socket.receiveFrom(buffer.data(), buffer.size(), from, ec);
      if (ec) {
        problem(std::string(who) + ": " + ec.message());
        return;
      }
      if (n < kTag) {
        problem(std::string(who) + ": a datagram of " + std::to_string(n) + " bytes");
        continue;
      }
      std::uint32_t sender, sequence;
      std::memcpy(&sender, buffer.data(), 4);
      std::memcpy(&sequence, buffer.data() + 4, 4);
      if (sender == kStopSender) return;
      const std::vector<unsigned char> expected = sharedDatagram(sender, sequence);
      if (n != expected.size() || !std::equal(expected.begin(), expected.end(), buffer.begin()))
        problem(std::string(who) + ": datagram " + std::to_string(sender) + "/" + std::to_string(sequence) +
                " cut or mixed (" + std::to_string(n) + " bytes)");
      {
        const std::lock_guard<std::mutex> hold(lock);
        if (!seen.insert({sender, sequence}).second)
          problems.push_back(std::string(who) + ": datagram " + std::to_string(sender) + "/" +
                             std::to_string(sequence) + " twice");
      }
      ++received;
    }
  }
};

// The lines of the reader tests: varied lengths, CRLF or LF.
std::string lineNumber(std::uint32_t i) {
  std::string line = "line " + std::to_string(i) + " ";
  line.append((i * 37u) % 300u, static_cast<char>('a' + i % 26));
  return line;
}

class DatagramAdversarialTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(DatagramAdversarialTest);
  CPPUNIT_TEST(testThreadsAndTasksOfTwoChannelsReceiveAndSendOnOneSocket);
  CPPUNIT_TEST(testCloseRacingReceiversAndSendersOnThreadsAndInTasks);
  CPPUNIT_TEST(testDestinationOfTheOtherFamilyIsRefusedAndTheSocketGoesOn);
  CPPUNIT_TEST(testConnectedSocketSendingElsewhereNeverReachesThePeer);
  CPPUNIT_TEST(testTruncatedAndEmptyDatagramsSeenAliveByThreadsAndTasks);
  CPPUNIT_TEST(testReaderTimeoutMidLineLosesNothingOnThread);
  CPPUNIT_TEST(testReaderTimeoutMidLineLosesNothingInTask);
  CPPUNIT_TEST(testReaderCancelledOverAndOverLosesNoByteOnThread);
  CPPUNIT_TEST(testReaderCancelledOverAndOverLosesNoByteInTask);
  CPPUNIT_TEST(testLineAtMaxBytesAndOneOverWithTheDelimiterSplit);
  CPPUNIT_TEST(testEndOfStreamMidLineThenMixedReadsDrainIt);
  CPPUNIT_TEST(testZeroSizeAndNullReadsWithBytesBuffered);
  CPPUNIT_TEST(testPeekBeyondAnyMemoryIsAnErrorNotACrash);
  CPPUNIT_TEST(testHugeMaxBytesReadsALongLine);
  CPPUNIT_TEST_SUITE_END();

 public:
  // ------------------------------------------------------------------ UDP

  // Two threads and two tasks (one per channel: the limit the header sets)
  // receive on one socket while a thread and a task send to it: every
  // datagram arrives once, whole, at exactly one of the receivers.
  void testThreadsAndTasksOfTwoChannelsReceiveAndSendOnOneSocket() {
    std::unique_ptr<EventChannel> first = evchan::test::makeChannel(2);
    std::unique_ptr<EventChannel> second = evchan::test::makeChannel(1);
    UdpSocket receiver = boundUdp();
    UdpSocket sender = boundUdp();
    receiver.setTimeout(generous(20s));
    sender.setTimeout(generous(20s));
    const Address to = receiver.localAddress();
    const std::uint32_t perSender = evchan::test::slowdown() > 1 ? 400 : 3000;
    SharedReceipts receipts;
    std::atomic<std::uint32_t> sent{0};
    // At most 64 datagrams in flight: the receive buffer never overflows.
    auto sendAll = [&](std::uint32_t id) {
      for (std::uint32_t sequence = 0; sequence < perSender; ++sequence) {
        while (sent.load() - receipts.received.load() > 64) {
          if (evchan::inTask()) {
            evchan::this_task::sleepFor(1ms);
          } else {
            std::this_thread::sleep_for(1ms);
          }
        }
        const std::vector<unsigned char> datagram = sharedDatagram(id, sequence);
        std::error_code ec;
        const std::size_t n = sender.sendTo(datagram.data(), datagram.size(), to, ec);
        if (ec || n != datagram.size()) {
          receipts.problem("send " + std::to_string(id) + ": " + ec.message());
          return;
        }
        ++sent;
      }
    };
    TaskHandle taskReceiver1 = spawnOrSkip(*first, [&] { receipts.receiveUntilStopped(receiver, "task 1"); });
    TaskHandle taskReceiver2 = spawnOrSkip(*second, [&] { receipts.receiveUntilStopped(receiver, "task 2"); });
    std::thread threadReceiver1([&] { receipts.receiveUntilStopped(receiver, "thread 1"); });
    std::thread threadReceiver2([&] { receipts.receiveUntilStopped(receiver, "thread 2"); });
    TaskHandle taskSender = spawnOrSkip(*first, [&] { sendAll(0); });
    std::thread threadSender([&] { sendAll(1); });
    threadSender.join();
    evchan::test::joinWithin(taskSender, 60s);
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return receipts.received.load() >= sent.load(); }));
    // One stop datagram per receiver: a stopped receiver takes no more.
    for (int i = 0; i < 4; ++i) {
      const std::uint32_t stop[2] = {kStopSender, 0};
      sender.sendTo(stop, sizeof stop, to);
    }
    threadReceiver1.join();
    threadReceiver2.join();
    evchan::test::joinWithin(taskReceiver1);
    evchan::test::joinWithin(taskReceiver2);
    CPPUNIT_ASSERT_MESSAGE(receipts.problems.empty() ? "" : receipts.problems.front(), receipts.problems.empty());
    CPPUNIT_ASSERT_EQUAL(2 * perSender, sent.load());
    CPPUNIT_ASSERT_EQUAL(std::size_t(2 * perSender), receipts.seen.size());
  }

  // Many times: a thread and a task wait to receive, a thread and a task
  // send to the socket itself, datagrams arrive from outside, and another
  // thread closes the socket.  Every call ends (no hang), with data that
  // is whole, operation_canceled or not_open; later calls are not_open.
  void testCloseRacingReceiversAndSendersOnThreadsAndInTasks() {
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    UdpSocket outside = boundUdp();
    const int rounds = evchan::test::slowdown() > 1 ? 60 : 300;
    std::mt19937 random(7);
    for (int round = 0; round < rounds; ++round) {
      UdpSocket socket = boundUdp();
      const Address self = socket.localAddress();
      std::atomic<int> started{0};
      std::atomic<int> badEnds{0};
      std::string badEnd;
      std::mutex badLock;
      auto check = [&](const std::error_code& ec, std::size_t n, const char* what) {
        if (!ec && n == 5) return true;  // a whole datagram (or send): go on
        if (ec == kCancelled || ec == Errc::not_open) return false;
        ++badEnds;
        const std::lock_guard<std::mutex> hold(badLock);
        badEnd = std::string(what) + (evchan::inTask() ? " in a task: " : " on a thread: ") +
                 (ec ? ec.message() : std::to_string(n) + " bytes");
        return false;
      };
      auto receiveLoop = [&] {
        ++started;
        char buffer[16];
        for (;;) {
          std::error_code ec;
          const std::size_t n = socket.receive(buffer, sizeof buffer, ec);
          if (!check(ec, n, "receive")) return;
        }
      };
      auto sendLoop = [&] {
        ++started;
        for (;;) {
          std::error_code ec;
          const std::size_t n = socket.sendTo("hello", 5, self, ec);
          if (!check(ec, n, "send")) return;
          if (evchan::inTask()) evchan::this_task::yield();
        }
      };
      TaskHandle taskReceiver = spawnOrSkip(*channel, receiveLoop);
      TaskHandle taskSender = spawnOrSkip(*channel, sendLoop);
      std::thread threadReceiver(receiveLoop);
      std::thread threadSender(sendLoop);
      for (int i = 0; i < 3; ++i) outside.sendTo("hello", 5, self);
      CPPUNIT_ASSERT(evchan::test::eventually([&] { return started.load() == 4; }));
      if (random() % 2) std::this_thread::sleep_for(std::chrono::microseconds(random() % 500));
      std::thread closer([&] { socket.close(); });
      closer.join();
      threadReceiver.join();
      threadSender.join();
      evchan::test::joinWithin(taskReceiver);
      evchan::test::joinWithin(taskSender);
      CPPUNIT_ASSERT_MESSAGE("round " + std::to_string(round) + ": " + badEnd, badEnds.load() == 0);
      CPPUNIT_ASSERT(!socket.isOpen());
      std::error_code ec;
      char byte;
      socket.receive(&byte, 1, ec);
      ASSERT_ERROR(Errc::not_open, ec);
    }
  }

  // An IPv6 destination (or peer) on an IPv4 socket: an error, nothing
  // sent, and the socket still sends and receives afterwards.  Likewise a
  // bind to the other family.
  void testDestinationOfTheOtherFamilyIsRefusedAndTheSocketGoesOn() {
    UdpSocket socket = boundUdp();
    UdpSocket peer = boundUdp();
    peer.setTimeout(generous(5s));
    const Address v6 = Address::fromNumeric("::1", peer.localAddress().port(), AddressFamily::IPv6);
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, socket.sendTo("v6", 2, v6, ec));
    CPPUNIT_ASSERT_MESSAGE("sendTo an IPv6 address from an IPv4 socket succeeded", static_cast<bool>(ec));
    socket.connect(v6, ec);
    ASSERT_ERROR(std::errc::address_family_not_supported, ec);
    const Address peerAfter = socket.peerAddress(ec);
    CPPUNIT_ASSERT_MESSAGE("the refused peer became the socket's: " + peerAfter.toString(),
                           ec || peerAfter.toString() != v6.toString());
    UdpSocket unbound = UdpSocket::open(AddressFamily::IPv4);
    unbound.bind(Address::fromNumeric("::1", 0, AddressFamily::IPv6), ec);
    CPPUNIT_ASSERT_MESSAGE("bind of an IPv4 socket to ::1 succeeded", static_cast<bool>(ec));
    // Not connected by the failed connect: send() still has no peer.
    socket.send("x", 1, ec);
    ASSERT_ERROR(std::errc::not_connected, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{3}, socket.sendTo("ok!", 3, peer.localAddress()));
    char buffer[8];
    Address from;
    CPPUNIT_ASSERT_EQUAL(std::size_t{3}, peer.receiveFrom(buffer, sizeof buffer, from));
    CPPUNIT_ASSERT_EQUAL(std::string("ok!"), std::string(buffer, 3));
    CPPUNIT_ASSERT(from == socket.localAddress());
    if (!evchan::test::ipv6LoopbackAvailable()) return;
    UdpSocket six = UdpSocket::open(AddressFamily::IPv6);
    six.bind(Address::fromNumeric("127.0.0.1", 0, AddressFamily::IPv4), ec);
    CPPUNIT_ASSERT_MESSAGE("bind of an IPv6 socket to 127.0.0.1 succeeded", static_cast<bool>(ec));
  }

  // A socket connect()ed to A that sends with sendTo() to B: A never gets
  // that datagram (B does, or the call fails; Windows ignores the address
  // of a connected socket's sendto, which would send it to A).
  void testConnectedSocketSendingElsewhereNeverReachesThePeer() {
    UdpSocket socket = boundUdp();
    UdpSocket a = boundUdp();
    UdpSocket b = boundUdp();
    a.setTimeout(200ms);
    b.setTimeout(generous(5s));
    socket.connect(a.localAddress());
    std::error_code ec;
    const std::size_t n = socket.sendTo("to-b", 4, b.localAddress(), ec);
    char buffer[8];
    Address from;
    if (!ec) {
      CPPUNIT_ASSERT_EQUAL(std::size_t{4}, n);
      CPPUNIT_ASSERT_EQUAL(std::size_t{4}, b.receiveFrom(buffer, sizeof buffer, from));
      CPPUNIT_ASSERT_EQUAL(std::string("to-b"), std::string(buffer, 4));
      CPPUNIT_ASSERT(from == socket.localAddress());
    }
    a.receive(buffer, sizeof buffer, ec);
    ASSERT_ERROR(std::errc::timed_out, ec);
    // The connection holds: send() still goes to A, and only A's answers count.
    CPPUNIT_ASSERT_EQUAL(std::size_t{4}, socket.send("to-a", 4));
    a.setTimeout(generous(5s));
    CPPUNIT_ASSERT_EQUAL(std::size_t{4}, a.receiveFrom(buffer, sizeof buffer, from));
    CPPUNIT_ASSERT_EQUAL(std::string("to-a"), std::string(buffer, 4));
    b.sendTo("from-b", 6, socket.localAddress());
    a.sendTo("from-a", 6, socket.localAddress());
    socket.setTimeout(generous(5s));
    CPPUNIT_ASSERT_EQUAL(std::size_t{6}, socket.receiveFrom(buffer, sizeof buffer, from));
    CPPUNIT_ASSERT_EQUAL(std::string("from-a"), std::string(buffer, 6));
    CPPUNIT_ASSERT(from == a.localAddress());
  }

  // Truncated, empty and null-buffer receives, interleaved, by a thread
  // and a task taking turns: each reports as udp_socket.h says (the bytes
  // that fit and message_size; 0 and no error for an empty datagram), and
  // the datagram after each is intact.
  void testTruncatedAndEmptyDatagramsSeenAliveByThreadsAndTasks() {
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
    UdpSocket socket = boundUdp();
    UdpSocket sender = boundUdp();
    socket.setTimeout(generous(5s));
    const Address to = socket.localAddress();
    const Address senderAddress = sender.localAddress();
    std::string failure;
    auto receiveRound = [&](int round) {
      char buffer[4];
      Address from;
      std::error_code ec;
      std::size_t n = socket.receiveFrom(buffer, sizeof buffer, from, ec);  // "0123456789"
      if (ec != std::errc::message_size || n != 4 || std::string(buffer, 4) != "0123" || from != senderAddress) {
        failure = "round " + std::to_string(round) + " truncated: " + ec.message() + " n=" + std::to_string(n);
        return;
      }
      from = Address();
      n = socket.receiveFrom(nullptr, 0, from, ec);  // ""
      if (ec || n != 0 || from != senderAddress) {
        failure = "round " + std::to_string(round) + " empty: " + ec.message();
        return;
      }
      n = socket.receiveFrom(nullptr, 0, from, ec);  // "dropped"
      if (ec != std::errc::message_size || n != 0) {
        failure = "round " + std::to_string(round) + " null: " + ec.message();
        return;
      }
      n = socket.receiveFrom(buffer, sizeof buffer, from, ec);  // "end"
      if (ec || n != 3 || std::string(buffer, 3) != "end") {
        failure = "round " + std::to_string(round) + " after: " + ec.message() + " n=" + std::to_string(n);
      }
    };
    for (int round = 0; round < 40 && failure.empty(); ++round) {
      sender.sendTo("0123456789", 10, to);
      sender.sendTo(nullptr, 0, to);
      sender.sendTo("dropped", 7, to);
      sender.sendTo("end", 3, to);
      if (round % 2 == 0) {
        receiveRound(round);
      } else {
        TaskHandle task = spawnOrSkip(*channel, [&] { receiveRound(round); });
        evchan::test::joinWithin(task);
      }
    }
    CPPUNIT_ASSERT_MESSAGE(failure, failure.empty());
  }

  // ------------------------------------------------------- BufferedReader

  void testReaderTimeoutMidLineLosesNothingOnThread() { timeoutMidLine(false); }
  void testReaderTimeoutMidLineLosesNothingInTask() { timeoutMidLine(true); }

  void testReaderCancelledOverAndOverLosesNoByteOnThread() { cancelledOverAndOver(false); }
  void testReaderCancelledOverAndOverLosesNoByteInTask() { cancelledOverAndOver(true); }

  // maxBytes counts the line with its terminator: exactly at it fits, one
  // byte over is message_too_long with maxBytes bytes buffered and nothing
  // taken, also when the delimiter arrives in two reads, and when a part of
  // it sits right at the limit.
  void testLineAtMaxBytesAndOneOverWithTheDelimiterSplit() {
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    pair.server.setTimeout(generous(5s));
    BufferedReader reader(pair.server, 3);
    // 6 bytes and "\r\n": 8, the limit.  The "\r" comes in a read of its own.
    pair.client.writeAll("abcdef\r", 7);
    CPPUNIT_ASSERT_EQUAL(std::size_t{7}, reader.peek(7).size());
    pair.client.writeAll("\n", 1);
    CPPUNIT_ASSERT_EQUAL(std::string("abcdef"), reader.readLine(8));
    // One more: the "\n" is the ninth byte.
    pair.client.writeAll("abcdefg\r", 8);
    CPPUNIT_ASSERT_EQUAL(std::size_t{8}, reader.peek(8).size());
    pair.client.writeAll("\nnext\n", 6);
    std::error_code ec;
    CPPUNIT_ASSERT(reader.readLine(8, ec).empty());
    ASSERT_ERROR(Errc::message_too_long, ec);
    CPPUNIT_ASSERT(reader.buffered().substr(0, 8) == "abcdefg\r");
    // With room for it, the same line reads whole; nothing was taken.
    CPPUNIT_ASSERT_EQUAL(std::string("abcdefg"), reader.readLine(9));
    CPPUNIT_ASSERT_EQUAL(std::string("next"), reader.readLine(5));
    // A three-byte delimiter whose first two bytes end at the limit.
    pair.client.writeAll("xy--", 4);
    CPPUNIT_ASSERT_EQUAL(std::size_t{4}, reader.peek(4).size());
    pair.client.writeAll("|rest--|", 8);
    CPPUNIT_ASSERT(reader.readUntil("--|", 4, ec).empty());
    ASSERT_ERROR(Errc::message_too_long, ec);
    CPPUNIT_ASSERT_EQUAL(std::string("xy--|"), reader.readUntil("--|", 5));
    CPPUNIT_ASSERT_EQUAL(std::string("rest--|"), reader.readUntil("--|", 7));
    CPPUNIT_ASSERT(reader.buffered().empty());
  }

  // The peer closes in the middle of a line: end_of_stream with the part
  // buffered; readSome() and readExactly() then hand that part out, in
  // order, and then report end_of_stream themselves.
  void testEndOfStreamMidLineThenMixedReadsDrainIt() {
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    pair.server.setTimeout(generous(5s));
    pair.client.writeAll("one\r\ntwo\npartial-line", 21);
    pair.client.close();
    BufferedReader reader(pair.server, 2);
    CPPUNIT_ASSERT_EQUAL(std::string("one"), reader.readLine(64));
    char two[4];
    CPPUNIT_ASSERT_EQUAL(std::size_t{4}, reader.readExactly(two, 4));
    CPPUNIT_ASSERT_EQUAL(std::string("two\n"), std::string(two, 4));
    std::error_code ec;
    CPPUNIT_ASSERT(reader.readLine(64, ec).empty());
    ASSERT_ERROR(Errc::end_of_stream, ec);
    CPPUNIT_ASSERT_EQUAL(std::string("partial-line"), std::string(reader.buffered()));
    // readUntil fails the same way and still takes nothing.
    CPPUNIT_ASSERT(reader.readUntil("-", 1, ec).empty());
    ASSERT_ERROR(Errc::message_too_long, ec);
    CPPUNIT_ASSERT_EQUAL(std::string("partial-"), reader.readUntil("-", 64));
    char part[16];
    CPPUNIT_ASSERT_EQUAL(std::size_t{2}, reader.readSome(part, 2, ec));
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT_EQUAL(std::string("li"), std::string(part, 2));
    // More than is left: what is left, then end_of_stream.
    CPPUNIT_ASSERT_EQUAL(std::size_t{2}, reader.readExactly(part, 5, ec));
    ASSERT_ERROR(Errc::end_of_stream, ec);
    CPPUNIT_ASSERT_EQUAL(std::string("ne"), std::string(part, 2));
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, reader.readSome(part, sizeof part, ec));
    ASSERT_ERROR(Errc::end_of_stream, ec);
    CPPUNIT_ASSERT(reader.buffered().empty());
  }

  // Stream::readSome(): "A zero size returns 0 at once"; a null buffer is
  // fine with a zero size.  With bytes buffered the reader must do the
  // same, without touching (or copying to) the null buffer, and keep them.
  void testZeroSizeAndNullReadsWithBytesBuffered() {
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    pair.server.setTimeout(generous(5s));
    BufferedReader reader(pair.server);
    pair.client.writeAll("kept\n", 5);
    CPPUNIT_ASSERT_EQUAL(std::size_t{5}, reader.peek(5).size());
    std::error_code ec = std::make_error_code(std::errc::io_error);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, reader.readSome(nullptr, 0, ec));
    ASSERT_NO_ERROR(ec);
    char byte = 'z';
    ec = std::make_error_code(std::errc::io_error);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, reader.readSome(&byte, 0, ec));
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT_EQUAL('z', byte);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, reader.readExactly(nullptr, 0, ec));
    ASSERT_NO_ERROR(ec);
    reader.readSome(nullptr, 1, ec);
    ASSERT_ERROR(Errc::null_buffer, ec);
    reader.readExactly(nullptr, 1, ec);
    ASSERT_ERROR(Errc::null_buffer, ec);
    CPPUNIT_ASSERT_EQUAL(std::string("kept"), reader.readLine(64));
  }

  // A peek() for more than any buffer can be: not_enough_memory from the
  // error form (the header bounds the buffer by `atLeast`; it cannot be
  // met), never an exception through a noexcept function (std::terminate),
  // and what is buffered stays.
  void testPeekBeyondAnyMemoryIsAnErrorNotACrash() {
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    pair.server.setTimeout(generous(5s));
    BufferedReader reader(pair.server, 4);
    pair.client.writeAll("still here\n", 11);
    CPPUNIT_ASSERT_EQUAL(std::size_t{11}, reader.peek(11).size());
    std::error_code ec;
    const std::string_view seen = reader.peek(std::numeric_limits<std::size_t>::max(), ec);
    ASSERT_ERROR(std::errc::not_enough_memory, ec);  // buffered_reader.h
    CPPUNIT_ASSERT_EQUAL(std::string("still here\n"), std::string(seen));
    CPPUNIT_ASSERT_THROW(reader.peek(std::numeric_limits<std::size_t>::max()), evchan::SystemError);
    CPPUNIT_ASSERT_EQUAL(std::string("still here"), reader.readLine(64));
  }

  // readUntil()/readLine() with a limit of SIZE_MAX: the buffer grows with
  // what arrives (a 1 MiB line through a 16-byte first buffer), nothing
  // overflows.
  void testHugeMaxBytesReadsALongLine() {
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    pair.server.setTimeout(generous(10s));
    const std::string line(std::size_t{1} << 20, 'q');
    std::thread writer([&] {
      pair.client.writeAll(line.data(), line.size());
      pair.client.writeAll("\r\nshort|", 8);
    });
    BufferedReader reader(pair.server, 16);
    const std::size_t unlimited = std::numeric_limits<std::size_t>::max();
    const std::string got = reader.readLine(unlimited);
    writer.join();
    CPPUNIT_ASSERT(got == line);
    CPPUNIT_ASSERT_EQUAL(std::string("short|"), reader.readUntil("|", unlimited));
  }

 private:
  // A line arrives in three parts, the last part of its "\r\n" split off;
  // the reader's stream times out between them.  Each timeout returns an
  // empty string, takes nothing, keeps the part; the line then reads whole.
  static void timeoutMidLine(bool inTask) {
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    runWhere(inTask, [&] {
      BufferedReader reader(pair.server, 2);
      pair.server.setTimeout(50ms);
      std::error_code ec;
      pair.client.writeAll("first ", 6);
      CPPUNIT_ASSERT(reader.readLine(64, ec).empty());
      ASSERT_ERROR(std::errc::timed_out, ec);
      CPPUNIT_ASSERT_EQUAL(std::string("first "), std::string(reader.buffered()));
      pair.client.writeAll("half\r", 5);
      CPPUNIT_ASSERT(reader.readUntil("\r\n", 64, ec).empty());
      ASSERT_ERROR(std::errc::timed_out, ec);
      CPPUNIT_ASSERT_EQUAL(std::string("first half\r"), std::string(reader.buffered()));
      // A zero timeout: the would-block is timed_out at once, still nothing lost.
      pair.server.setTimeout(evchan::Duration::zero());
      CPPUNIT_ASSERT(reader.readLine(64, ec).empty());
      ASSERT_ERROR(std::errc::timed_out, ec);
      pair.client.writeAll("\nsecond\n", 8);
      pair.server.setTimeout(generous(5s));
      CPPUNIT_ASSERT_EQUAL(std::string("first half"), reader.readLine(64));
      CPPUNIT_ASSERT_EQUAL(std::string("second"), reader.readLine(64));
      CPPUNIT_ASSERT(reader.buffered().empty());
    });
  }

  // A writer sends lines in pieces of random sizes (delimiters split every
  // way) while another thread cancels the reading socket over and over.
  // The reader retries each operation_canceled: every line arrives whole
  // and in order, so a cancelled read never ate bytes.
  static void cancelledOverAndOver(bool inTask) {
    if (inTask) skipWithoutTasks();
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    pair.server.setTimeout(generous(20s));
    const std::uint32_t lines = evchan::test::slowdown() > 1 ? 1500 : 6000;
    std::string all;
    for (std::uint32_t i = 0; i < lines; ++i) all += lineNumber(i) + (i % 2 ? "\r\n" : "\n");
    std::atomic<bool> done{false};
    std::atomic<std::uint32_t> cancels{0};
    std::thread writer([&] {
      std::mt19937 random(11);
      for (std::size_t at = 0; at < all.size();) {
        const std::size_t piece = std::min<std::size_t>(all.size() - at, 1 + random() % 700);
        pair.client.writeAll(all.data() + at, piece);
        at += piece;
        if (random() % 4 == 0) std::this_thread::sleep_for(std::chrono::microseconds(random() % 200));
      }
    });
    std::thread canceller([&] {
      std::mt19937 random(13);
      while (!done.load()) {
        pair.server.cancel();
        ++cancels;
        std::this_thread::sleep_for(std::chrono::microseconds(random() % 300));
      }
    });
    std::string failure;
    std::uint32_t cancelled = 0;
    runWhere(inTask, [&] {
      BufferedReader reader(pair.server, 64);
      for (std::uint32_t i = 0; i < lines && failure.empty(); ++i) {
        std::error_code ec;
        std::string line = reader.readLine(1024, ec);
        while (ec == kCancelled) {
          ++cancelled;
          if (!line.empty()) failure = "a cancelled readLine returned bytes";
          line = reader.readLine(1024, ec);
        }
        if (ec) {
          failure = "line " + std::to_string(i) + ": " + ec.message();
        } else if (line != lineNumber(i)) {
          failure = "line " + std::to_string(i) + " reads \"" + line.substr(0, 40) + "\"";
        }
      }
    });
    done = true;
    canceller.join();
    writer.join();
    std::printf("%u lines, %u cancels, %u readLine calls cancelled\n", lines, cancels.load(), cancelled);
    CPPUNIT_ASSERT_MESSAGE(failure, failure.empty());
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(DatagramAdversarialTest);

}  // namespace
