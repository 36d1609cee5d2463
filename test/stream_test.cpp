// SPDX-License-Identifier: Apache-2.0
// The stream algorithms over TcpSocket (test/support/stream_suite.h).
#include <memory>

#include <evchan/tcp_socket.h>

#include "support/loopback.h"
#include "support/stream_suite.h"

namespace {

struct TcpStreams {
  static const char* name() { return "TcpSocket"; }
  static evchan::test::StreamPair make() {
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    pair.client.setTimeout(std::chrono::seconds(30));
    pair.server.setTimeout(std::chrono::seconds(30));
    return {std::make_unique<evchan::TcpSocket>(std::move(pair.client)),
            std::make_unique<evchan::TcpSocket>(std::move(pair.server))};
  }
};

}  // namespace

CPPUNIT_TEST_SUITE_REGISTRATION(evchan::test::StreamSuite<TcpStreams>);
