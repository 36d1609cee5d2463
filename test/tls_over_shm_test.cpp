// SPDX-License-Identifier: Apache-2.0
// TlsStream over a ShmStream, each end with a reader and a writer at once
// (TlsStream's documented use): its writer takes the lower stream's read
// mark while its reader is inside a lower read, and that mark must not
// count as a second read.  It did once (ShmStream refused the reader with
// socket_busy, then TLS saw broken_pipe).  Linux, TLS builds.
#include <cppunit/extensions/HelperMacros.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <evchan/evchan.h>
#include <evchan/shm_stream.h>
#include <evchan/tls.h>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/posix/shm_pair.h"
#include "support/tls_certificates.h"

using namespace std::chrono_literals;

namespace {

using evchan::ShmListener;
using evchan::ShmStream;
using evchan::TlsContext;
using evchan::TlsStream;
using evchan::test::describe;

constexpr evchan::Duration kPatience = 10s;  // a failing test ends, it never hangs
constexpr std::size_t kSmallRing = 4096;     // the writers fill it and wait: both directions busy
constexpr int kMessages = 20000;
constexpr std::size_t kMessageSize = 48;

// One direction's traffic on one end: writes kMessages messages, or reads
// until it has them all; the first error stops it.
struct Direction {
  std::error_code ec;
  std::size_t bytes = 0;

  void write(TlsStream& stream) {
    const std::vector<char> message(kMessageSize, 'w');
    for (int i = 0; i < kMessages && !ec; ++i) bytes += stream.writeAll(message.data(), message.size(), ec);
  }
  void read(TlsStream& stream) {
    char buffer[4096];
    while (bytes < kMessages * kMessageSize && !ec) bytes += stream.readSome(buffer, sizeof buffer, ec);
  }
};

}  // namespace

class TlsOverShmTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(TlsOverShmTest);
  CPPUNIT_TEST(eachEndReadsWhileItWrites);
  CPPUNIT_TEST_SUITE_END();

 public:
  void eachEndReadsWhileItWrites() {
    const evchan::test::LocalhostAuthority& authority = evchan::test::localhostAuthority();
    TlsContext serverContext(TlsContext::Role::server);
    serverContext.useCertificateChainPem(authority.server.certificate);
    serverContext.usePrivateKeyPem(authority.server.key);
    TlsContext clientContext(TlsContext::Role::client);
    clientContext.addCaPem(authority.ca.certificate);

    ShmListener listener =
        ShmListener::listen(evchan::test::uniqueShmName("tls-over-shm-test", "duplex"));
    evchan::test::ShmPair pair = evchan::test::connectShmPair(listener, kSmallRing, kPatience);
    TlsStream client(clientContext, std::make_unique<ShmStream>(std::move(pair.client)));
    TlsStream server(serverContext, std::make_unique<ShmStream>(std::move(pair.server)));
    std::error_code serverHandshake;
    std::thread handshaking([&] { server.handshake({}, serverHandshake); });
    std::error_code clientHandshake;
    client.handshake("localhost", clientHandshake);
    handshaking.join();
    ASSERT_NO_ERROR(clientHandshake);
    ASSERT_NO_ERROR(serverHandshake);

    Direction clientWrites, clientReads, serverWrites, serverReads;
    std::thread threads[] = {
        std::thread([&] { clientWrites.write(client); }), std::thread([&] { clientReads.read(client); }),
        std::thread([&] { serverWrites.write(server); }), std::thread([&] { serverReads.read(server); })};
    for (std::thread& thread : threads) thread.join();  // each ends: by its count, or an error, or the timeout

    const std::size_t total = kMessages * kMessageSize;
    CPPUNIT_ASSERT_MESSAGE("client write: " + describe(clientWrites.ec), !clientWrites.ec);
    CPPUNIT_ASSERT_MESSAGE("client read: " + describe(clientReads.ec), !clientReads.ec);
    CPPUNIT_ASSERT_MESSAGE("server write: " + describe(serverWrites.ec), !serverWrites.ec);
    CPPUNIT_ASSERT_MESSAGE("server read: " + describe(serverReads.ec), !serverReads.ec);
    CPPUNIT_ASSERT_EQUAL(total, clientReads.bytes);
    CPPUNIT_ASSERT_EQUAL(total, serverReads.bytes);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(TlsOverShmTest);
