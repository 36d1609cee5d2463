// SPDX-License-Identifier: Apache-2.0
// TLS between evchan's own client and server over loopback TCP, on threads,
// with certificates made in memory (support/tls_certificates): a checksummed
// exchange both ways, host-name and CA verification, an expired
// certificate, a required client certificate, ALPN, close_notify against
// truncation.  Portable: it needs no openssl command and runs on Windows
// too (tls_test holds the interop cases with openssl s_server/s_client).
#include <cppunit/extensions/HelperMacros.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <evchan/evchan.h>
#include <evchan/tls.h>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/tls_certificates.h"

namespace {

using namespace std::chrono_literals;
using evchan::Errc;
using evchan::TcpSocket;
using evchan::TlsContext;
using evchan::TlsErrc;
using evchan::TlsStream;
using evchan::test::localhostAuthority;
using evchan::test::PemIdentity;

constexpr evchan::Duration kPatience = 20s;

TlsContext serverContext(const PemIdentity& identity = localhostAuthority().server) {
  TlsContext context(TlsContext::Role::server);
  context.useCertificateChainPem(identity.certificate);
  context.usePrivateKeyPem(identity.key);
  return context;
}

TlsContext clientContext(const std::string& caPem = localhostAuthority().ca.certificate) {
  TlsContext context(TlsContext::Role::client);
  context.addCaPem(caPem);
  return context;
}

// A TLS pair over one loopback connection, not yet handshaken, each side
// with the lower socket's timeout set.
struct TlsPair {
  TlsStream client;
  TlsStream server;
};

TlsPair tlsPair(const TlsContext& clientSide, const TlsContext& serverSide) {
  evchan::test::ConnectedPair tcp = evchan::test::connectPair();
  tcp.client.setTimeout(kPatience);
  tcp.server.setTimeout(kPatience);
  return {TlsStream(clientSide, std::make_unique<TcpSocket>(std::move(tcp.client))),
          TlsStream(serverSide, std::make_unique<TcpSocket>(std::move(tcp.server)))};
}

// Both handshakes at once (the client's on this thread, the server's on
// another); returns the two errors.
struct HandshakeErrors {
  std::error_code client;
  std::error_code server;
};

HandshakeErrors handshakeBoth(TlsPair& pair, const std::string& serverName) {
  HandshakeErrors errors;
  std::thread server([&] { pair.server.handshake({}, errors.server); });
  pair.client.handshake(serverName, errors.client);
  // A client that refused the server's certificate closes its socket, so the
  // server's handshake ends too.
  if (errors.client) pair.client.close();
  server.join();
  return errors;
}

}  // namespace

class TlsLoopbackTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(TlsLoopbackTest);
  CPPUNIT_TEST(testEightMiBBothWaysChecksummed);
  CPPUNIT_TEST(testWrongHostNameIsRefused);
  CPPUNIT_TEST(testUntrustedCaIsRefused);
  CPPUNIT_TEST(testExpiredCertificateIsRefused);
  CPPUNIT_TEST(testRequiredClientCertificate);
  CPPUNIT_TEST(testAlpnChoosesTheServersProtocol);
  CPPUNIT_TEST(testCloseNotifyEndsTheStreamAndAClosedSocketTruncates);
  CPPUNIT_TEST_SUITE_END();

 public:
  void testEightMiBBothWaysChecksummed() {
    constexpr std::size_t kBytes = std::size_t{8} << 20;
    TlsPair pair = tlsPair(clientContext(), serverContext());
    HandshakeErrors errors = handshakeBoth(pair, "localhost");
    ASSERT_NO_ERROR(errors.client);
    ASSERT_NO_ERROR(errors.server);
    CPPUNIT_ASSERT_EQUAL(std::string("TLSv1.3"), pair.client.protocolVersion());
    CPPUNIT_ASSERT_EQUAL(std::string("CN=localhost"), pair.client.peerCertificateSubject());
    CPPUNIT_ASSERT(pair.server.peerCertificateSubject().empty());  // no client certificate asked for

    // Each side writes 8 MiB while it reads the other's: both directions
    // at once, far beyond the socket buffers.
    std::vector<unsigned char> toServer(kBytes), toClient(kBytes), atServer(kBytes), atClient(kBytes);
    evchan::test::fillPattern(toServer.data(), kBytes, 1);
    evchan::test::fillPattern(toClient.data(), kBytes, 2);
    std::error_code serverWrite, serverRead, clientWrite;
    std::thread serverWriter([&] { pair.server.writeAll(toClient.data(), kBytes, serverWrite); });
    std::thread serverReader([&] { pair.server.readExactly(atServer.data(), kBytes, serverRead); });
    std::thread clientWriter([&] { pair.client.writeAll(toServer.data(), kBytes, clientWrite); });
    pair.client.readExactly(atClient.data(), kBytes);
    clientWriter.join();
    serverReader.join();
    serverWriter.join();
    ASSERT_NO_ERROR(serverWrite);
    ASSERT_NO_ERROR(serverRead);
    ASSERT_NO_ERROR(clientWrite);
    using evchan::test::checksum;
    using evchan::test::kChecksumSeed;
    CPPUNIT_ASSERT_EQUAL(checksum(kChecksumSeed, toServer.data(), kBytes), checksum(kChecksumSeed, atServer.data(), kBytes));
    CPPUNIT_ASSERT_EQUAL(checksum(kChecksumSeed, toClient.data(), kBytes), checksum(kChecksumSeed, atClient.data(), kBytes));
  }

  void testWrongHostNameIsRefused() {
    TlsPair pair = tlsPair(clientContext(), serverContext());
    HandshakeErrors errors = handshakeBoth(pair, "other.example");
    ASSERT_ERROR(TlsErrc::verification_failed, errors.client);
    CPPUNIT_ASSERT(errors.server);
    CPPUNIT_ASSERT(!pair.client.isHandshaken());
  }

  void testUntrustedCaIsRefused() {
    const PemIdentity otherCa = evchan::test::makeCertificateAuthority("another CA");
    TlsPair pair = tlsPair(clientContext(otherCa.certificate), serverContext());
    HandshakeErrors errors = handshakeBoth(pair, "localhost");
    ASSERT_ERROR(TlsErrc::verification_failed, errors.client);
    CPPUNIT_ASSERT_MESSAGE(errors.client.message(), errors.client.message().find("issuer") != std::string::npos);
  }

  void testExpiredCertificateIsRefused() {
    const PemIdentity expired =
        evchan::test::makeSignedCertificate(localhostAuthority().ca, "localhost", {"localhost"}, {}, true);
    TlsPair pair = tlsPair(clientContext(), serverContext(expired));
    HandshakeErrors errors = handshakeBoth(pair, "localhost");
    ASSERT_ERROR(TlsErrc::verification_failed, errors.client);
    CPPUNIT_ASSERT_MESSAGE(errors.client.message(), errors.client.message().find("expired") != std::string::npos);
  }

  // A server that requires a client certificate refuses a client without
  // one, and takes one its CA signed.
  void testRequiredClientCertificate() {
    TlsContext server = serverContext();
    server.addCaPem(localhostAuthority().ca.certificate);
    server.requireClientCertificate();
    {
      TlsPair pair = tlsPair(clientContext(), server);
      HandshakeErrors errors = handshakeBoth(pair, "localhost");
      ASSERT_ERROR(TlsErrc::verification_failed, errors.server);
      // TLS 1.3 finishes the client's handshake before the server has
      // checked; its first read then gets the server's alert.
      if (!errors.client) {
        char byte;
        std::error_code ec;
        pair.client.readSome(&byte, 1, ec);
        CPPUNIT_ASSERT_MESSAGE("a client without a certificate was let in", ec);
      }
    }
    const PemIdentity clientIdentity = evchan::test::makeSignedCertificate(localhostAuthority().ca, "client one", {}, {});
    TlsContext client = clientContext();
    client.useCertificateChainPem(clientIdentity.certificate);
    client.usePrivateKeyPem(clientIdentity.key);
    TlsPair pair = tlsPair(client, server);
    HandshakeErrors errors = handshakeBoth(pair, "localhost");
    ASSERT_NO_ERROR(errors.client);
    ASSERT_NO_ERROR(errors.server);
    CPPUNIT_ASSERT_EQUAL(std::string("CN=client one"), pair.server.peerCertificateSubject());
  }

  void testAlpnChoosesTheServersProtocol() {
    TlsContext client = clientContext();
    client.setAlpnProtocols({"h2", "http/1.1"});
    TlsContext server = serverContext();
    server.setAlpnProtocols({"http/1.1"});
    TlsPair pair = tlsPair(client, server);
    HandshakeErrors errors = handshakeBoth(pair, "localhost");
    ASSERT_NO_ERROR(errors.client);
    ASSERT_NO_ERROR(errors.server);
    CPPUNIT_ASSERT_EQUAL(std::string("http/1.1"), pair.client.alpnProtocol());
    CPPUNIT_ASSERT_EQUAL(std::string("http/1.1"), pair.server.alpnProtocol());
  }

  // shutdown() sends close_notify: the peer's read ends with end_of_stream.
  // A socket closed without it is TlsErrc::truncated, never a clean end.
  void testCloseNotifyEndsTheStreamAndAClosedSocketTruncates() {
    char byte;
    std::error_code ec;
    {
      TlsPair pair = tlsPair(clientContext(), serverContext());
      HandshakeErrors errors = handshakeBoth(pair, "localhost");
      ASSERT_NO_ERROR(errors.client);
      pair.server.writeAll("x", 1);
      pair.server.shutdown();
      CPPUNIT_ASSERT_EQUAL(std::size_t{1}, pair.client.readSome(&byte, 1));
      CPPUNIT_ASSERT_EQUAL('x', byte);
      pair.client.readSome(&byte, 1, ec);
      ASSERT_ERROR(Errc::end_of_stream, ec);
    }
    TlsPair pair = tlsPair(clientContext(), serverContext());
    HandshakeErrors errors = handshakeBoth(pair, "localhost");
    ASSERT_NO_ERROR(errors.client);
    pair.server.lowerLayer().close();  // the TCP connection ends, no close_notify
    pair.client.readSome(&byte, 1, ec);
    ASSERT_ERROR(TlsErrc::truncated, ec);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(TlsLoopbackTest);
