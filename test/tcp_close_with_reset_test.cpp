// SPDX-License-Identifier: Apache-2.0
// TcpSocket::closeWithReset(): the abortive close.  The peer's next call
// fails with connection_reset (where close() gives it the end of the
// stream), what was queued unsent never reaches it, a call under way ends
// as close() ends it, and on a closed socket it does nothing.
#include <cppunit/extensions/HelperMacros.h>

#include <chrono>
#include <cstddef>
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
};

CPPUNIT_TEST_SUITE_REGISTRATION(TcpCloseWithResetTest);
