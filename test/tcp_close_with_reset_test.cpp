// SPDX-License-Identifier: Apache-2.0
// TcpSocket::closeWithReset(): the abortive close.  The peer's next call
// fails with connection_reset (where close() gives it the end of the
// stream), what was queued unsent never reaches it, a call under way ends
// as close() ends it, and on a closed socket it does nothing.
#include <cppunit/extensions/HelperMacros.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <evchan/evchan.h>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/waiting.h"

using namespace std::chrono_literals;

namespace {

using evchan::Errc;
using evchan::TcpSocket;
using evchan::test::connectPair;
using evchan::test::ConnectedPair;
using evchan::test::describe;

constexpr evchan::Duration kPatience = 10s;  // a failing test ends, it never hangs

// What `socket`'s reads bring until one fails: the bytes, and that error.
std::size_t readUntilFailure(TcpSocket& socket, std::error_code& ec) {
  std::vector<char> buffer(64 * 1024);
  std::size_t total = 0;
  ec.clear();
  while (!ec) total += socket.readSome(buffer.data(), buffer.size(), ec);
  return total;
}

// Writes to `socket`, whose peer does not read, until the buffers on the
// way are full (a write waits 200 ms in vain); returns the bytes taken.
std::size_t fillTheWay(TcpSocket& socket) {
  socket.setTimeout(200ms);
  const std::vector<char> chunk(64 * 1024, 'q');
  std::size_t total = 0;
  for (;;) {
    std::error_code ec;
    total += socket.writeAll(chunk.data(), chunk.size(), ec);
    if (ec == std::errc::timed_out) return total;
    ASSERT_NO_ERROR(ec);
  }
}

}  // namespace

class TcpCloseWithResetTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(TcpCloseWithResetTest);
  CPPUNIT_TEST(peerSeesAResetWhereCloseEndsTheStream);
  CPPUNIT_TEST(unsentBytesNeverReachThePeer);
  CPPUNIT_TEST(aReadUnderWayEndsAsCloseEndsIt);
  CPPUNIT_TEST(closedSocketIsLeftAlone);
  CPPUNIT_TEST(resetWhileAWriteEventWaitsOnEpoll);
  CPPUNIT_TEST(resetWhileAWriteEventWaitsOnIoUring);
  CPPUNIT_TEST(resetWhileAWriteEventWaitsOnPoll);
  CPPUNIT_TEST(resetWhileAWriteEventWaitsOnSelect);
  CPPUNIT_TEST(resetWhileAWriteEventWaitsOnAprPollset);
  CPPUNIT_TEST_SUITE_END();

 public:
  void peerSeesAResetWhereCloseEndsTheStream() {
    for (const bool reset : {false, true}) {
      ConnectedPair pair = connectPair();
      pair.client.setTimeout(kPatience);
      pair.server.writeAll("hello", 5);
      char buffer[5];
      pair.client.readExactly(buffer, 5);
      if (reset) {
        pair.server.closeWithReset();
      } else {
        pair.server.close();
      }
      CPPUNIT_ASSERT(!pair.server.isOpen());
      std::error_code ec;
      CPPUNIT_ASSERT_EQUAL(std::size_t{0}, readUntilFailure(pair.client, ec));
      if (reset) {
        ASSERT_ERROR(std::errc::connection_reset, ec);
      } else {
        ASSERT_ERROR(Errc::end_of_stream, ec);
      }
    }
  }

  // The server writes to a client that does not read until the buffers
  // on the way are full.  After close() the client reads every byte; after
  // closeWithReset() it gets at most what had reached its own receive
  // buffer, then connection_reset.
  void unsentBytesNeverReachThePeer() {
    for (const bool reset : {false, true}) {
      ConnectedPair pair = connectPair();
      pair.client.setTimeout(kPatience);
      const std::size_t written = fillTheWay(pair.server);
      if (reset) {
        pair.server.closeWithReset();
      } else {
        pair.server.close();
      }
      std::error_code ec;
      const std::size_t received = readUntilFailure(pair.client, ec);
      const std::string counts = std::to_string(received) + " of " + std::to_string(written) + " bytes, then " +
                                 describe(ec);
      if (reset) {
        CPPUNIT_ASSERT_MESSAGE(counts, ec == std::errc::connection_reset && received < written);
      } else {
        CPPUNIT_ASSERT_MESSAGE(counts, ec == Errc::end_of_stream && received == written);
      }
    }
  }

  void aReadUnderWayEndsAsCloseEndsIt() {
    ConnectedPair pair = connectPair();
    pair.server.setTimeout(kPatience);
    pair.client.setTimeout(kPatience);
    std::error_code readEnded;
    std::thread reader([&] {
      char byte;
      pair.server.readSome(&byte, 1, readEnded);
    });
    // The read asleep, or about to be: it ends either way, with
    // operation_canceled or, not begun yet, not_open.
    std::this_thread::sleep_for(50ms);
    pair.server.closeWithReset();
    reader.join();
    CPPUNIT_ASSERT_MESSAGE(describe(readEnded), readEnded == std::errc::operation_canceled ||
                                                    readEnded == Errc::not_open);
    std::error_code ec;
    readUntilFailure(pair.client, ec);
    ASSERT_ERROR(std::errc::connection_reset, ec);
  }

  void closedSocketIsLeftAlone() {
    TcpSocket never;
    never.closeWithReset();
    CPPUNIT_ASSERT(!never.isOpen());
    ConnectedPair pair = connectPair();
    pair.server.close();
    pair.server.closeWithReset();  // after close(): nothing more happens
    CPPUNIT_ASSERT(!pair.server.isOpen());
    pair.client.setTimeout(kPatience);
    std::error_code ec;
    readUntilFailure(pair.client, ec);
    ASSERT_ERROR(Errc::end_of_stream, ec);
  }

  // A WriteEvent posted to a channel waits for room on the socket when
  // closeWithReset() comes.  The poll and select backends' poller, asleep
  // in poll(2) on the socket, held it open: the close sent nothing, and the
  // peer read every byte queued (4 MiB) before the reset, or nothing at
  // all while it did not read.  The poller is woken now when a socket
  // leaves its set.
  void resetWhileAWriteEventWaitsOnEpoll() { checkResetWhileAWriteEventWaits(evchan::Backend::Epoll); }
  void resetWhileAWriteEventWaitsOnIoUring() { checkResetWhileAWriteEventWaits(evchan::Backend::IoUring); }
  void resetWhileAWriteEventWaitsOnPoll() { checkResetWhileAWriteEventWaits(evchan::Backend::Poll); }
  void resetWhileAWriteEventWaitsOnSelect() { checkResetWhileAWriteEventWaits(evchan::Backend::Select); }
  void resetWhileAWriteEventWaitsOnAprPollset() { checkResetWhileAWriteEventWaits(evchan::Backend::AprPollset); }

  void checkResetWhileAWriteEventWaits(evchan::Backend backend) {
    std::unique_ptr<evchan::EventChannel> channel = evchan::test::createOnBackendOrSkip(backend, 2);
    ConnectedPair pair = connectPair();
    pair.client.setTimeout(kPatience);
    std::size_t written = fillTheWay(pair.server);
    // Writes posted until one waits (comes back not within 100 ms): its
    // poller is then asleep on the socket.
    const std::vector<char> more(64 * 1024, 'm');
    evchan::WriteEvent write(pair.server, more.data(), more.size());
    for (int posted = 0;; ++posted) {
      CPPUNIT_ASSERT_MESSAGE("the socket never filled", posted < 1000);
      channel->post(write);
      if (channel->getEvent(100ms) == nullptr) break;
      ASSERT_NO_ERROR(write.error());
      written += write.bytesTransferred();
    }
    pair.server.closeWithReset();
    CPPUNIT_ASSERT(channel->getEvent(kPatience) == &write);
    ASSERT_ERROR(std::errc::operation_canceled, write.error());
    // Read only once the reset is there: a prompt reader would otherwise
    // drain the queue in the moment the poller takes to wake.
    CPPUNIT_ASSERT_MESSAGE("no reset within 2 s", resetArrives(pair.client));
    std::error_code ec;
    const std::size_t received = readUntilFailure(pair.client, ec);
    CPPUNIT_ASSERT_MESSAGE(std::to_string(received) + " of " + std::to_string(written) + " bytes, then " + describe(ec),
                           received < written);
  }

  // Whether `client` learns of its peer's reset within 2 s (stretched on a
  // slow build) without reading: a write of its own fails then, with the
  // reset's error, where before it the closed socket took every byte.
  static bool resetArrives(TcpSocket& client) {
    const auto giveUp = std::chrono::steady_clock::now() + evchan::test::generous(2s);
    while (std::chrono::steady_clock::now() < giveUp) {
      std::error_code ec;
      client.writeAll("p", 1, ec);
      if (ec) return ec == std::errc::connection_reset || ec == std::errc::broken_pipe;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(TcpCloseWithResetTest);
