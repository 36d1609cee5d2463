// SPDX-License-Identifier: Apache-2.0
// Tests of DatagramReceiveEvent and DatagramSendEvent on every backend:
// the datagram and its sender come back with the event, truncation is
// reported, cancel and close hand a pending receive back once, an ICMP
// port unreachable is connection_refused, and post() refuses bad input.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "support/backend_fixture.h"
#include "support/diagnostics.h"
#include "support/named_suite.h"
#include "support/reclaim_on_exit.h"
#include "support/skip.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::Address;
using evchan::AddressFamily;
using evchan::Backend;
using evchan::DatagramReceiveEvent;
using evchan::DatagramSendEvent;
using evchan::Duration;
using evchan::Errc;
using evchan::Event;
using evchan::EventChannel;
using evchan::UdpSocket;
using evchan::test::ReclaimOnExit;

constexpr Duration kPatience = 10s;
const std::error_code kCancelled = std::make_error_code(std::errc::operation_canceled);

Event& nextEvent(EventChannel& channel, Duration patience = kPatience) {
  Event* event = channel.getEvent(patience);
  CPPUNIT_ASSERT_MESSAGE("no event came back in time", event != nullptr);
  return *event;
}

UdpSocket boundSocket() {
  UdpSocket socket = UdpSocket::open(AddressFamily::IPv4);
  socket.bind(Address::fromNumeric("127.0.0.1", 0, AddressFamily::IPv4));
  return socket;
}

template <Backend B>
class DatagramEventTest : public evchan::test::BackendChannelFixture<B> {
  EVCHAN_TEST_SUITE_NAMED(DatagramEventTest, suiteName());
  CPPUNIT_TEST(testReceiveEventGetsTheDatagramAndItsSender);
  CPPUNIT_TEST(testSendEventToADestinationAndToTheConnectedPeer);
  CPPUNIT_TEST(testIPv6PeerAndBytes);
  CPPUNIT_TEST(testEmptyDatagrams);
  CPPUNIT_TEST(testTruncatedReceiveIsReported);
  CPPUNIT_TEST(testZeroSizeReceiveBuffer);
  CPPUNIT_TEST(testLargestDatagramAndOneByteMore);
  CPPUNIT_TEST(testCancelRacingArrivingDatagrams);
  CPPUNIT_TEST(testCancelledReceiveComesBackOnceAndMayBeReposted);
  CPPUNIT_TEST(testClosingTheSocketCancelsAPendingReceive);
  CPPUNIT_TEST(testPortUnreachableIsConnectionRefused);
  CPPUNIT_TEST(testPostRefusesBadInput);
  CPPUNIT_TEST(testManyDatagramsByCallbacks);
  CPPUNIT_TEST_SUITE_END();

 public:
  using evchan::test::BackendChannelFixture<B>::channel_;

  static std::string suiteName() { return std::string("DatagramEventTest<") + evchan::backendName(B) + ">"; }

  void testReceiveEventGetsTheDatagramAndItsSender() {
    UdpSocket receiver = boundSocket();
    UdpSocket sender = boundSocket();
    char buffer[16] = {};
    DatagramReceiveEvent receive(receiver, buffer, sizeof buffer);
    ReclaimOnExit reclaim(*channel_);
    channel_->post(receive);  // nothing queued yet: it waits
    CPPUNIT_ASSERT(channel_->getEvent(20ms) == nullptr);
    sender.sendTo("datagram", 8, receiver.localAddress());
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    ASSERT_NO_ERROR(receive.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t(8), receive.bytesTransferred());
    CPPUNIT_ASSERT_EQUAL(std::string("datagram"), std::string(buffer, 8));
    CPPUNIT_ASSERT_EQUAL(sender.localAddress().toString(), receive.peer().toString());
    // One already queued completes at once.
    sender.sendTo("again", 5, receiver.localAddress());
    channel_->post(receive);
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    ASSERT_NO_ERROR(receive.error());
    CPPUNIT_ASSERT_EQUAL(std::string("again"), std::string(buffer, receive.bytesTransferred()));
  }

  void testSendEventToADestinationAndToTheConnectedPeer() {
    UdpSocket receiver = boundSocket();
    UdpSocket sender = boundSocket();
    receiver.setTimeout(5s);
    DatagramSendEvent to(sender, "to", 2, receiver.localAddress());
    ReclaimOnExit reclaim(*channel_);
    channel_->post(to);
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &to);
    ASSERT_NO_ERROR(to.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t(2), to.bytesTransferred());
    char buffer[8];
    Address from;
    CPPUNIT_ASSERT_EQUAL(std::size_t(2), receiver.receiveFrom(buffer, sizeof buffer, from));
    CPPUNIT_ASSERT_EQUAL(std::string("to"), std::string(buffer, 2));
    CPPUNIT_ASSERT_EQUAL(sender.localAddress().toString(), from.toString());

    sender.connect(receiver.localAddress());
    DatagramSendEvent connected(sender, "peer", 4);
    channel_->post(connected);
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &connected);
    ASSERT_NO_ERROR(connected.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t(4), connected.bytesTransferred());
    CPPUNIT_ASSERT_EQUAL(std::size_t(4), receiver.receive(buffer, sizeof buffer));
    CPPUNIT_ASSERT_EQUAL(std::string("peer"), std::string(buffer, 4));
  }

  // Over IPv6 the sender's address is longer than an IPv4 one: the event's
  // peer() (io_uring: the name the kernel wrote into the event's scratch)
  // is the whole of it, port included.
  void testIPv6PeerAndBytes() {
    std::error_code ec;
    UdpSocket receiver = UdpSocket::open(AddressFamily::IPv6, ec);
    if (!ec) receiver.bind(Address::fromNumeric("::1", 0, AddressFamily::IPv6), ec);
    if (ec) EVCHAN_SKIP("no IPv6 loopback: " + ec.message());
    UdpSocket sender = UdpSocket::open(AddressFamily::IPv6);
    sender.bind(Address::fromNumeric("::1", 0, AddressFamily::IPv6));
    char buffer[16] = {};
    DatagramReceiveEvent receive(receiver, buffer, sizeof buffer);
    DatagramSendEvent send(sender, "over six", 8, receiver.localAddress());
    ReclaimOnExit reclaim(*channel_);
    channel_->post(receive);
    channel_->post(send);
    for (int i = 0; i < 2; ++i) {
      Event& event = nextEvent(*channel_);
      ASSERT_NO_ERROR(event.error());
    }
    CPPUNIT_ASSERT_EQUAL(std::size_t(8), send.bytesTransferred());
    CPPUNIT_ASSERT_EQUAL(std::string("over six"), std::string(buffer, receive.bytesTransferred()));
    CPPUNIT_ASSERT(receive.peer().family() == AddressFamily::IPv6);
    CPPUNIT_ASSERT_EQUAL(sender.localAddress().toString(), receive.peer().toString());
  }

  void testEmptyDatagrams() {
    UdpSocket receiver = boundSocket();
    UdpSocket sender = boundSocket();
    char buffer[4];
    DatagramReceiveEvent receive(receiver, buffer, sizeof buffer);
    DatagramSendEvent send(sender, nullptr, 0, receiver.localAddress());
    ReclaimOnExit reclaim(*channel_);
    channel_->post(receive);
    channel_->post(send);
    bool received = false, sent = false;
    for (int i = 0; i < 2; ++i) {
      Event& event = nextEvent(*channel_);
      ASSERT_NO_ERROR(event.error());
      (&event == &receive ? received : sent) = true;
    }
    CPPUNIT_ASSERT(received && sent);
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), receive.bytesTransferred());
    CPPUNIT_ASSERT_EQUAL(sender.localAddress().toString(), receive.peer().toString());
  }

  void testTruncatedReceiveIsReported() {
    UdpSocket receiver = boundSocket();
    UdpSocket sender = boundSocket();
    char buffer[4] = {};
    DatagramReceiveEvent receive(receiver, buffer, sizeof buffer);
    ReclaimOnExit reclaim(*channel_);
    channel_->post(receive);  // waiting (io_uring: in the kernel) when the datagram comes
    CPPUNIT_ASSERT(channel_->getEvent(20ms) == nullptr);
    sender.sendTo("0123456789", 10, receiver.localAddress());
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    ASSERT_ERROR(std::errc::message_size, receive.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t(4), receive.bytesTransferred());
    CPPUNIT_ASSERT_EQUAL(std::string("0123"), std::string(buffer, 4));
    CPPUNIT_ASSERT_EQUAL(sender.localAddress().toString(), receive.peer().toString());
    // Queued before the post: the same report.
    sender.sendTo("abcdefghij", 10, receiver.localAddress());
    channel_->post(receive);
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    ASSERT_ERROR(std::errc::message_size, receive.error());
    CPPUNIT_ASSERT_EQUAL(std::string("abcd"), std::string(buffer, 4));
  }

  // A zero-size buffer: a non-empty datagram is cut to nothing and says
  // so (io_uring: the kernel's MSG_TRUNC in the message header), an empty
  // one fits; the datagram after is whole.
  void testZeroSizeReceiveBuffer() {
    UdpSocket receiver = boundSocket();
    UdpSocket sender = boundSocket();
    char buffer[8] = {};
    DatagramReceiveEvent receive(receiver, nullptr, 0);
    ReclaimOnExit reclaim(*channel_);
    channel_->post(receive);
    CPPUNIT_ASSERT(channel_->getEvent(20ms) == nullptr);
    sender.sendTo("cut", 3, receiver.localAddress());
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    ASSERT_ERROR(std::errc::message_size, receive.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), receive.bytesTransferred());
    CPPUNIT_ASSERT_EQUAL(sender.localAddress().toString(), receive.peer().toString());
    sender.sendTo(nullptr, 0, receiver.localAddress());
    channel_->post(receive);
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    ASSERT_NO_ERROR(receive.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), receive.bytesTransferred());
    sender.sendTo("whole", 5, receiver.localAddress());
    receive.setBuffer(buffer, sizeof buffer);
    channel_->post(receive);
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    ASSERT_NO_ERROR(receive.error());
    CPPUNIT_ASSERT_EQUAL(std::string("whole"), std::string(buffer, receive.bytesTransferred()));
  }

  // 65,507 bytes (the most IPv4 carries) go and arrive byte for byte; one
  // more is message_size, and nothing leaves.
  void testLargestDatagramAndOneByteMore() {
    UdpSocket receiver = boundSocket();
    UdpSocket sender = boundSocket();
    std::vector<unsigned char> out(65508), in(70000);
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<unsigned char>(i * 131 + 7);
    DatagramReceiveEvent receive(receiver, in.data(), in.size());
    DatagramSendEvent tooBig(sender, out.data(), out.size(), receiver.localAddress());
    DatagramSendEvent largest(sender, out.data(), 65507, receiver.localAddress());
    ReclaimOnExit reclaim(*channel_);
    channel_->post(tooBig);
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &tooBig);
    ASSERT_ERROR(std::errc::message_size, tooBig.error());
    channel_->post(receive);
    channel_->post(largest);
    for (int i = 0; i < 2; ++i) {
      Event& event = nextEvent(*channel_);
      CPPUNIT_ASSERT(&event == &receive || &event == &largest);
      ASSERT_NO_ERROR(event.error());
    }
    CPPUNIT_ASSERT_EQUAL(std::size_t(65507), largest.bytesTransferred());
    CPPUNIT_ASSERT_EQUAL(std::size_t(65507), receive.bytesTransferred());
    CPPUNIT_ASSERT(std::memcmp(in.data(), out.data(), 65507) == 0);
    // Nothing else came: the one too big never left.
    channel_->post(receive);
    CPPUNIT_ASSERT(channel_->getEvent(50ms) == nullptr);
    CPPUNIT_ASSERT(channel_->cancel(receive));
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    ASSERT_ERROR(kCancelled, receive.error());
  }

  // A datagram sent and the pending receive cancelled at once, 500 times:
  // the event comes back once each time, with the datagram or cancelled;
  // a cancelled one gets it on the next post; none is lost or doubled.
  void testCancelRacingArrivingDatagrams() {
    UdpSocket receiver = boundSocket();
    UdpSocket sender = boundSocket();
    unsigned char buffer[4];
    DatagramReceiveEvent receive(receiver, buffer, sizeof buffer);
    ReclaimOnExit reclaim(*channel_);
    int cancelled = 0;
    for (int round = 0; round < 500; ++round) {
      const unsigned char byte = static_cast<unsigned char>(round);
      channel_->post(receive);
      if (round % 2 == 0) {
        sender.sendTo(&byte, 1, receiver.localAddress());
        channel_->cancel(receive);
      } else {
        channel_->cancel(receive);
        sender.sendTo(&byte, 1, receiver.localAddress());
      }
      CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
      if (receive.error() == kCancelled) {
        ++cancelled;
        channel_->post(receive);
        CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
      }
      const std::string where = "round " + std::to_string(round) + ": " + evchan::test::describe(receive.error());
      CPPUNIT_ASSERT_MESSAGE(where, !receive.error());
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::size_t(1), receive.bytesTransferred());
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, static_cast<int>(byte), static_cast<int>(buffer[0]));
      // Exactly once: nothing more is queued.
      CPPUNIT_ASSERT_MESSAGE(where, channel_->getEvent(Duration::zero()) == nullptr);
    }
    std::printf("%s: %d of 500 receives cancelled\n", suiteName().c_str(), cancelled);
  }

  void testCancelledReceiveComesBackOnceAndMayBeReposted() {
    UdpSocket receiver = boundSocket();
    char buffer[8] = {};
    DatagramReceiveEvent receive(receiver, buffer, sizeof buffer);
    ReclaimOnExit reclaim(*channel_);
    channel_->post(receive);
    CPPUNIT_ASSERT(channel_->cancel(receive));
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    ASSERT_ERROR(kCancelled, receive.error());
    CPPUNIT_ASSERT(channel_->getEvent(20ms) == nullptr);
    UdpSocket sender = boundSocket();
    sender.sendTo("after", 5, receiver.localAddress());
    channel_->post(receive);
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    ASSERT_NO_ERROR(receive.error());
    CPPUNIT_ASSERT_EQUAL(std::string("after"), std::string(buffer, receive.bytesTransferred()));
  }

  void testClosingTheSocketCancelsAPendingReceive() {
    UdpSocket receiver = boundSocket();
    char buffer[8];
    DatagramReceiveEvent receive(receiver, buffer, sizeof buffer);
    ReclaimOnExit reclaim(*channel_);
    channel_->post(receive);
    receiver.close();
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &receive);
    ASSERT_ERROR(kCancelled, receive.error());
    CPPUNIT_ASSERT_EQUAL(std::error_code(Errc::not_open), postError(receive));
  }

  void testPortUnreachableIsConnectionRefused() {
    Address nobody;
    {
      UdpSocket gone = boundSocket();
      nobody = gone.localAddress();
    }
    UdpSocket client = UdpSocket::open(AddressFamily::IPv4);
    client.connect(nobody);
    char buffer[4];
    DatagramReceiveEvent receive(client, buffer, sizeof buffer);
    DatagramSendEvent send(client, "ping", 4);
    ReclaimOnExit reclaim(*channel_);
    std::error_code ec;
    for (int round = 0; round < 5 && ec != std::errc::connection_refused; ++round) {
      channel_->post(send);
      ec = nextEvent(*channel_).error();
      if (ec) break;
      channel_->post(receive);
      Event* back = channel_->getEvent(2s);
      if (back == nullptr) {
        channel_->cancel(receive);
        back = &nextEvent(*channel_);
      }
      ec = back->error();
    }
    ASSERT_ERROR(std::errc::connection_refused, ec);
  }

  void testPostRefusesBadInput() {
    UdpSocket closed;
    char buffer[4];
    DatagramReceiveEvent onClosed(closed, buffer, sizeof buffer);
    CPPUNIT_ASSERT_EQUAL(std::error_code(Errc::not_open), postError(onClosed));
    UdpSocket socket = boundSocket();
    DatagramReceiveEvent nullBuffer(socket, nullptr, 4);
    CPPUNIT_ASSERT_EQUAL(std::error_code(Errc::null_buffer), postError(nullBuffer));
    DatagramSendEvent badPort(socket, "x", 1, Address::fromNumeric("127.0.0.1", 70000, AddressFamily::IPv4));
    CPPUNIT_ASSERT_EQUAL(std::error_code(Errc::port_out_of_range), postError(badPort));
    DatagramSendEvent notNumeric(socket, "x", 1, Address::fromNumeric("example.com", 9, AddressFamily::IPv4));
    ASSERT_ERROR(std::errc::invalid_argument, postError(notNumeric));
    DatagramSendEvent nullSend(socket, nullptr, 4, socket.localAddress());
    CPPUNIT_ASSERT_EQUAL(std::error_code(Errc::null_buffer), postError(nullSend));
    DatagramSendEvent sendOnClosed(closed, "x", 1, socket.localAddress());
    CPPUNIT_ASSERT_EQUAL(std::error_code(Errc::not_open), postError(sendOnClosed));
    // One receive at a time per socket.
    DatagramReceiveEvent first(socket, buffer, sizeof buffer);
    DatagramReceiveEvent second(socket, buffer, sizeof buffer);
    ReclaimOnExit reclaim(*channel_);
    channel_->post(first);
    CPPUNIT_ASSERT_EQUAL(std::error_code(Errc::socket_busy), postError(second));
    CPPUNIT_ASSERT_EQUAL(std::error_code(Errc::already_in_flight), postError(first));
    CPPUNIT_ASSERT(channel_->cancel(first));
    CPPUNIT_ASSERT(&nextEvent(*channel_) == &first);
  }

  void testManyDatagramsByCallbacks() {
    // A ping-pong of 2,000 datagrams driven by the events' callbacks.
    UdpSocket a = boundSocket();
    UdpSocket b = boundSocket();
    constexpr int kRounds = 2000;
    char bufferA[8], bufferB[8];
    int counter = 0;
    std::atomic<int> rounds{0};
    std::atomic<bool> failed{false};
    DatagramReceiveEvent receiveB(b, bufferB, sizeof bufferB);
    DatagramSendEvent sendB(b, bufferB, 4);
    DatagramReceiveEvent receiveA(a, bufferA, sizeof bufferA);
    DatagramSendEvent sendA(a, &counter, sizeof counter, b.localAddress());
    evchan::NotifyEvent done;
    std::atomic<bool> finished{false};
    // Ends the exchange once; `ok` false records a failure.
    auto finish = [&](bool ok) {
      if (!ok) failed = true;
      if (!finished.exchange(true)) {
        std::error_code ec;
        channel_->post(done, ec);
      }
    };
    auto repost = [&](Event& event) {
      std::error_code ec;
      channel_->post(event, ec);
      if (ec) finish(false);
    };
    ReclaimOnExit reclaim(*channel_);
    receiveB.setCallback([&](Event& e) {
      if (e.error()) return finish(false);
      sendB.setBuffer(bufferB, receiveB.bytesTransferred());
      sendB.setDestination(receiveB.peer());
      repost(sendB);
    });
    sendB.setCallback([&](Event& e) {
      if (e.error()) return finish(false);
      repost(receiveB);
    });
    receiveA.setCallback([&](Event& e) {
      int echoed = -1;
      std::memcpy(&echoed, bufferA, sizeof echoed);
      if (e.error() || echoed != counter) return finish(false);
      if (++rounds == kRounds) return finish(true);
      ++counter;
      repost(sendA);
    });
    sendA.setCallback([&](Event& e) {
      if (e.error()) return finish(false);
      repost(receiveA);
    });
    channel_->post(receiveB);
    channel_->post(sendA);
    CPPUNIT_ASSERT_MESSAGE("the ping-pong did not finish", done.wait(evchan::test::generous(30s)));
    CPPUNIT_ASSERT(!failed.load());
    CPPUNIT_ASSERT_EQUAL(kRounds, rounds.load());
    // The last receiveB is pending: the reclaim at the end cancels it.
  }

 private:
  std::error_code postError(Event& event) {
    std::error_code ec;
    channel_->post(event, ec);
    return ec;
  }

};

CPPUNIT_TEST_SUITE_REGISTRATION(DatagramEventTest<Backend::Epoll>);
CPPUNIT_TEST_SUITE_REGISTRATION(DatagramEventTest<Backend::Poll>);
CPPUNIT_TEST_SUITE_REGISTRATION(DatagramEventTest<Backend::Select>);
CPPUNIT_TEST_SUITE_REGISTRATION(DatagramEventTest<Backend::AprPollset>);
CPPUNIT_TEST_SUITE_REGISTRATION(DatagramEventTest<Backend::IoUring>);
CPPUNIT_TEST_SUITE_REGISTRATION(DatagramEventTest<Backend::Aio>);
CPPUNIT_TEST_SUITE_REGISTRATION(DatagramEventTest<Backend::Iocp>);

}  // namespace
