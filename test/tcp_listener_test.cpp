// SPDX-License-Identifier: Apache-2.0
// TcpListener on real loopback sockets: binding, accepting, timeouts,
// address families, bad input, concurrent accept() and moves.
#include <cppunit/extensions/HelperMacros.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <string>
#include <vector>

#include <evchan/evchan.h>

#include "support/diagnostics.h"
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
using evchan::test::unusedPort;
using Clock = evchan::test::Clock;
using evchan::test::describe;
using evchan::test::elapsedText;
using evchan::test::timed;
using evchan::test::finishesWithin;

// Connects to `port` on `host` and accepts it; the pair is returned as
// {client, accepted}.
std::pair<TcpSocket, TcpSocket> connectAndAccept(TcpListener& listener, const std::string& host) {
  listener.setTimeout(5s);
  TcpSocket client = TcpSocket::connect({host, listener.port()}, 5s);
  TcpSocket accepted = listener.accept();
  return {std::move(client), std::move(accepted)};
}

bool refusesConnections(int port) {
  std::error_code ec;
  TcpSocket::connect({"127.0.0.1", port}, 5s, ec);
  return ec == std::errc::connection_refused;
}

}  // namespace

/// Asserts that the std::error_code `ec` equals `expected`: an evchan::Errc
/// (same code) or a std::errc (same portable condition).

class TcpListenerTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(TcpListenerTest);
  CPPUNIT_TEST(testListenOnPortZeroPicksAPort);
  CPPUNIT_TEST(testAcceptTimesOut);
  CPPUNIT_TEST(testAcceptZeroTimeoutFailsAtOnce);
  CPPUNIT_TEST(testListenTwiceOnSamePortFails);
  CPPUNIT_TEST(testRelistenWhileConnectionInTimeWait);
  CPPUNIT_TEST(testListenOnIpv6Loopback);
  CPPUNIT_TEST(testEmptyHostListensOnWildcard);
  CPPUNIT_TEST(testDefaultListenerIsNotOpen);
  CPPUNIT_TEST(testClosedListenerIsNotOpen);
  CPPUNIT_TEST(testPortOutOfRange);
  CPPUNIT_TEST(testHostWithNulIsRefused);
  CPPUNIT_TEST(testNegativeBacklogAndTimeout);
  CPPUNIT_TEST(testConcurrentAcceptsShareConnections);
  CPPUNIT_TEST(testMoveTransfersListener);
  CPPUNIT_TEST_SUITE_END();

 public:
  void testListenOnPortZeroPicksAPort() {
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    CPPUNIT_ASSERT(listener.isOpen());
    const int port = listener.port();
    CPPUNIT_ASSERT_MESSAGE("port " + std::to_string(port), port > 0 && port <= 65535);
    CPPUNIT_ASSERT_EQUAL(port, listener.localAddress().port());
    CPPUNIT_ASSERT_EQUAL(std::string("127.0.0.1"), listener.localAddress().host());
    CPPUNIT_ASSERT(listener.localAddress().family() == AddressFamily::IPv4);
    // The reported port is the one really listening.
    auto [client, accepted] = connectAndAccept(listener, "127.0.0.1");
    CPPUNIT_ASSERT_EQUAL(port, accepted.localAddress().port());
  }

  void testAcceptTimesOut() {
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    listener.setTimeout(200ms);
    CPPUNIT_ASSERT_EQUAL(evchan::Duration(200ms).count(), listener.timeout().count());
    std::error_code ec;
    TcpSocket accepted, releaser;
    Clock::duration elapsed{};
    // A client connecting releases an accept() that ignores its timeout.
    const bool finished = finishesWithin(3s, [&] { elapsed = timed([&] { accepted = listener.accept(ec); }); },
                                         [&] { releaser = TcpSocket::connect({"127.0.0.1", listener.port()}); });
    CPPUNIT_ASSERT_MESSAGE("accept ignored its timeout", finished);
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT(!accepted.isOpen());
    CPPUNIT_ASSERT_MESSAGE(elapsedText(elapsed), elapsed >= 190ms && elapsed < generous(2200ms));

    std::error_code thrown;
    try {
      listener.accept();
    } catch (const SystemError& error) {
      thrown = error.code();
    }
    ASSERT_ERROR(std::errc::timed_out, thrown);
    // The listener still works after timing out.
    auto [client, later] = connectAndAccept(listener, "127.0.0.1");
    CPPUNIT_ASSERT(later.isOpen());
  }

  void testAcceptZeroTimeoutFailsAtOnce() {
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    listener.setTimeout(0ms);
    std::error_code ec;
    TcpSocket accepted, releaser;
    Clock::duration elapsed{};
    const bool finished = finishesWithin(3s, [&] { elapsed = timed([&] { accepted = listener.accept(ec); }); },
                                         [&] { releaser = TcpSocket::connect({"127.0.0.1", listener.port()}); });
    CPPUNIT_ASSERT_MESSAGE("accept waited despite a zero timeout", finished);
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(elapsed), elapsed < generous(100ms));
  }

  void testListenTwiceOnSamePortFails() {
    const int port = unusedPort();
    TcpListener first = TcpListener::listen({"127.0.0.1", port});
    CPPUNIT_ASSERT_EQUAL(port, first.port());
    std::error_code ec;
    TcpListener second = TcpListener::listen({"127.0.0.1", port}, 511, ec);
    ASSERT_ERROR(std::errc::address_in_use, ec);
    CPPUNIT_ASSERT(!second.isOpen());
    try {
      TcpListener::listen({"127.0.0.1", port});
      CPPUNIT_FAIL("second listen on one port did not throw");
    } catch (const SystemError& error) {
      ASSERT_ERROR(std::errc::address_in_use, error.code());
      const std::string endpoint = "127.0.0.1:" + std::to_string(port);
      CPPUNIT_ASSERT_MESSAGE(std::string("what(): ") + error.what(),
                             std::string(error.what()).find(endpoint) != std::string::npos);
    }
  }

  void testRelistenWhileConnectionInTimeWait() {
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    const int port = listener.port();
    auto [client, accepted] = connectAndAccept(listener, "127.0.0.1");
    // The server side closes first, so its end of the connection (bound to
    // `port`) lingers in TIME_WAIT; only SO_REUSEADDR lets us bind again.
    accepted.close();
    client.setTimeout(5s);
    char byte;
    std::error_code ec;
    client.readSome(&byte, 1, ec);
    ASSERT_ERROR(Errc::end_of_stream, ec);
    client.close();
    listener.close();

    TcpListener again = TcpListener::listen({"127.0.0.1", port}, 511, ec);
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT_EQUAL(port, again.port());
  }

  void testListenOnIpv6Loopback() {
    if (!evchan::test::ipv6LoopbackAvailable()) EVCHAN_SKIP("no IPv6 loopback");
    TcpListener listener = TcpListener::listen({"::1", 0});
    CPPUNIT_ASSERT_EQUAL(std::string("::1"), listener.localAddress().host());
    CPPUNIT_ASSERT(listener.localAddress().family() == AddressFamily::IPv6);
    auto [client, accepted] = connectAndAccept(listener, "::1");
    const Address peer = accepted.peerAddress();
    CPPUNIT_ASSERT(peer.family() == AddressFamily::IPv6);
    CPPUNIT_ASSERT_EQUAL(std::string("::1"), peer.host());
    CPPUNIT_ASSERT_EQUAL(client.localAddress().toString(), peer.toString());
  }

  void testEmptyHostListensOnWildcard() {
    TcpListener listener = TcpListener::listen({"", 0});
    CPPUNIT_ASSERT(listener.port() > 0);
    auto [client, accepted] = connectAndAccept(listener, "127.0.0.1");
    // A v4 client of a dual-stack listener is still reported as IPv4.
    const Address peer = accepted.peerAddress();
    CPPUNIT_ASSERT_EQUAL(client.localAddress().toString(), peer.toString());
    CPPUNIT_ASSERT(peer.family() == AddressFamily::IPv4);
    CPPUNIT_ASSERT_EQUAL(std::string("127.0.0.1"), accepted.localAddress().host());
    // "Every local address": IPv6 clients too, where the machine has IPv6.
    if (evchan::test::ipv6LoopbackAvailable()) {
      auto [client6, accepted6] = connectAndAccept(listener, "::1");
      CPPUNIT_ASSERT(accepted6.peerAddress().family() == AddressFamily::IPv6);
      CPPUNIT_ASSERT_EQUAL(client6.localAddress().toString(), accepted6.peerAddress().toString());
    }
  }

  void testDefaultListenerIsNotOpen() {
    TcpListener listener;
    CPPUNIT_ASSERT(!listener.isOpen());
    assertEveryCallIsNotOpen(listener);
    listener.close();  // harmless
  }

  void testClosedListenerIsNotOpen() {
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    const int port = listener.port();
    listener.close();
    listener.close();  // idempotent
    CPPUNIT_ASSERT(!listener.isOpen());
    assertEveryCallIsNotOpen(listener);
    CPPUNIT_ASSERT_MESSAGE("closed listener still accepts connections", refusesConnections(port));
  }

  // Listened on 127.0.0.1 before it was refused: the C resolver stops at
  // the NUL.
  void testHostWithNulIsRefused() {
    std::error_code ec;
    TcpListener listener = TcpListener::listen({std::string("127.0.0.1\0.allowed.example.com", 30), 0}, 16, ec);
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == evchan::Errc::bad_endpoint);
    CPPUNIT_ASSERT(!listener.isOpen());
  }

  void testPortOutOfRange() {
    for (const int port : {70000, 65536, -1}) {
      std::error_code ec;
      TcpListener listener = TcpListener::listen({"127.0.0.1", port}, 511, ec);
      ASSERT_ERROR(Errc::port_out_of_range, ec);
      ASSERT_ERROR(std::errc::invalid_argument, ec);
      CPPUNIT_ASSERT(!listener.isOpen());
    }
    CPPUNIT_ASSERT_THROW(TcpListener::listen({"127.0.0.1", 70000}), SystemError);
  }

  void testNegativeBacklogAndTimeout() {
    std::error_code ec;
    TcpListener refused = TcpListener::listen({"127.0.0.1", 0}, -1, ec);
    ASSERT_ERROR(std::errc::invalid_argument, ec);
    CPPUNIT_ASSERT(!refused.isOpen());

    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    listener.setTimeout(-1ms, ec);
    ASSERT_ERROR(Errc::negative_timeout, ec);
    CPPUNIT_ASSERT(listener.timeout() == evchan::kInfiniteTimeout);  // unchanged
    CPPUNIT_ASSERT_THROW(listener.setTimeout(-1ns), SystemError);
  }

  void testConcurrentAcceptsShareConnections() {
    constexpr int kThreads = 8;
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
    listener.setTimeout(5s);
    const int port = listener.port();  // read before the threads share the listener
    // Each thread accepts exactly one connection and reports the id byte
    // its client sent.
    std::vector<std::future<int>> acceptors;
    for (int i = 0; i < kThreads; ++i) {
      acceptors.push_back(std::async(std::launch::async, [&listener] {
        TcpSocket accepted = listener.accept();
        accepted.setTimeout(5s);
        unsigned char id = 0;
        accepted.readExactly(&id, 1);
        return static_cast<int>(id);
      }));
    }
    std::vector<TcpSocket> clients;  // open until every acceptor has read its id
    for (int i = 0; i < kThreads; ++i) {
      clients.push_back(TcpSocket::connect({"127.0.0.1", port}, 5s));
      const unsigned char id = static_cast<unsigned char>(i);
      clients.back().writeAll(&id, 1);
    }
    std::vector<int> ids;
    for (auto& acceptor : acceptors) ids.push_back(acceptor.get());
    std::sort(ids.begin(), ids.end());
    for (int i = 0; i < kThreads; ++i) CPPUNIT_ASSERT_EQUAL(i, ids[i]);  // none lost, none twice
    // Nothing is left over in the queue either.
    listener.setTimeout(0ms);
    std::error_code ec;
    listener.accept(ec);
    ASSERT_ERROR(std::errc::timed_out, ec);
  }

  void testMoveTransfersListener() {
    TcpListener original = TcpListener::listen({"127.0.0.1", 0});
    const int port = original.port();
    TcpListener moved(std::move(original));
    CPPUNIT_ASSERT(!original.isOpen());
    assertEveryCallIsNotOpen(original);
    CPPUNIT_ASSERT_EQUAL(port, moved.port());
    {
      auto [client, accepted] = connectAndAccept(moved, "127.0.0.1");
      CPPUNIT_ASSERT(accepted.isOpen());
    }
    // Move-assigning over an open listener closes the one it held.
    TcpListener target = TcpListener::listen({"127.0.0.1", 0});
    const int targetPort = target.port();
    target = std::move(moved);
    CPPUNIT_ASSERT(!moved.isOpen());
    CPPUNIT_ASSERT_EQUAL(port, target.port());
    CPPUNIT_ASSERT_MESSAGE("overwritten listener still open", refusesConnections(targetPort));
    auto [client, accepted] = connectAndAccept(target, "127.0.0.1");
    CPPUNIT_ASSERT(accepted.isOpen());
  }

 private:
  static void assertEveryCallIsNotOpen(TcpListener& listener) {
    std::error_code ec;
    TcpSocket accepted = listener.accept(ec);
    ASSERT_ERROR(Errc::not_open, ec);
    CPPUNIT_ASSERT(!accepted.isOpen());
    listener.setTimeout(1s, ec);
    ASSERT_ERROR(Errc::not_open, ec);
    CPPUNIT_ASSERT(listener.localAddress(ec).empty());
    ASSERT_ERROR(Errc::not_open, ec);
    CPPUNIT_ASSERT_EQUAL(0, listener.port());
    CPPUNIT_ASSERT_THROW(listener.accept(), SystemError);
    CPPUNIT_ASSERT_THROW(listener.localAddress(), SystemError);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(TcpListenerTest);
