// SPDX-License-Identifier: Apache-2.0
// The stream algorithms over TcpSocket (test/support/stream_suite.h).
#include <memory>

#include <evchan/tcp_socket.h>

#include "support/host_socket.h"
#include "support/loopback.h"
#include "support/stream_suite.h"

namespace {

struct TcpStreams {
  static const char* name() { return "TcpSocket"; }
  static evchan::test::StreamPair make() { return wrap(evchan::test::connectPair()); }
  // Small socket buffers both ways (64 KiB asked): well under 1 MiB fills
  // the connection, and loopback still moves data fast.
  static evchan::test::StreamPair makeSmallBuffered() {
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    CPPUNIT_ASSERT(evchan::test::setHostSocketBuffers(pair.client, 65536, 65536));
    CPPUNIT_ASSERT(evchan::test::setHostSocketBuffers(pair.server, 65536, 65536));
    return wrap(std::move(pair));
  }
  static evchan::test::StreamPair wrap(evchan::test::ConnectedPair pair) {
    pair.client.setTimeout(std::chrono::seconds(30));
    pair.server.setTimeout(std::chrono::seconds(30));
    return {std::make_unique<evchan::TcpSocket>(std::move(pair.client)),
            std::make_unique<evchan::TcpSocket>(std::move(pair.server))};
  }
};

}  // namespace

CPPUNIT_TEST_SUITE_REGISTRATION(evchan::test::StreamSuite<TcpStreams>);
