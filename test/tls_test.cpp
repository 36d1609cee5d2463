// SPDX-License-Identifier: Apache-2.0
// TlsStream and TlsContext over real loopback TCP, in tasks and on threads:
// echo, 64 MiB checksummed both ways, refused certificates (wrong host,
// expired, untrusted CA, missing client certificate) with their reasons,
// garbage instead of a ClientHello, truncation, a stalled handshake, ALPN,
// session resumption, many connections on a two-worker channel, and
// interop with `openssl s_server` and `openssl s_client` child processes.
// The certificates are made at run time by the `openssl` command in a
// temporary directory; without that command every case is skipped.
#include <cppunit/extensions/HelperMacros.h>

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <mutex>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <evchan/evchan.h>
#include <evchan/tls.h>

#include "support/cancel_race.h"
#include "support/diagnostics.h"
#include "support/host_socket.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/skip.h"
#include "support/posix/openssl_child.h"
#include "support/slowdown.h"
#include "support/stream_suite.h"
#include "support/waiting.h"


namespace {

using namespace std::chrono_literals;
using evchan::Errc;
using evchan::EventChannel;
using evchan::Stream;
using evchan::SystemError;
using evchan::TaskHandle;
using evchan::TcpListener;
using evchan::TcpSocket;
using evchan::TlsContext;
using evchan::TlsErrc;
using evchan::TlsStream;
using evchan::test::ConnectedPair;
using evchan::test::connectPair;
using evchan::test::connectWhenListening;
using evchan::test::OpensslChild;

constexpr evchan::Duration kSocketTimeout = 20s;

// ------------------------------------------------------------ certificates
/// The certificates of the suite, made once by the `openssl` command in a
/// temporary directory that is removed at exit.
struct Certificates {
  std::string dir;
  std::string error;  // why they could not be made (the suite then skips)
  std::string path(const std::string& name) const { return dir + "/" + name; }
};

const char kOpensslConfig[] =
    "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n"
    "[ca_ext]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier = hash\n"
    "[server_ext]\nbasicConstraints = CA:FALSE\nsubjectAltName = DNS:localhost,IP:127.0.0.1\n"
    "extendedKeyUsage = serverAuth\n"
    "[wrong_host_ext]\nbasicConstraints = CA:FALSE\nsubjectAltName = DNS:wrong.example\n"
    "extendedKeyUsage = serverAuth\n"
    "[client_ext]\nbasicConstraints = CA:FALSE\nextendedKeyUsage = clientAuth\n";

bool run(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()) == 0; }

std::string removeDirectoryCommand;
void removeCertificates() {
  if (!removeDirectoryCommand.empty()) run(removeDirectoryCommand);
}

const Certificates& certificates() {
  static const Certificates made = [] {
    Certificates c;
    if (!run("command -v openssl")) {
      c.error = "the openssl command is not installed";
      return c;
    }
    char pattern[] = "/tmp/evchan-tls-test-XXXXXX";
    if (mkdtemp(pattern) == nullptr) {
      c.error = "mkdtemp failed";
      return c;
    }
    c.dir = pattern;
    removeDirectoryCommand = "rm -rf '" + c.dir + "'";
    std::atexit(removeCertificates);
    std::ofstream(c.path("openssl.cnf")) << kOpensslConfig;
    const std::string cd = "cd '" + c.dir + "' && ";
    const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    auto ca = [&](const std::string& name, const std::string& cn) {
      return run(cd + "openssl req -x509 -new -config openssl.cnf -extensions ca_ext" + key + " -keyout " + name +
                 ".key -out " + name + ".pem -days 30 -subj '/CN=" + cn + "'");
    };
    int serial = 1;
    auto leaf = [&](const std::string& name, const std::string& subject, const std::string& signer,
                    const std::string& extensions, int days) {
      return run(cd + "openssl req -new -config openssl.cnf" + key + " -keyout " + name + ".key -out " + name +
                 ".csr -subj '" + subject + "'") &&
             run(cd + "openssl x509 -req -in " + name + ".csr -CA " + signer + ".pem -CAkey " + signer +
                 ".key -set_serial " + std::to_string(serial++) + " -out " + name + ".pem -days " +
                 std::to_string(days) + " -extfile openssl.cnf -extensions " + extensions);
    };
    const bool ok = ca("ca", "evchan test CA") && ca("other_ca", "evchan untrusted CA") &&
                    leaf("server", "/CN=localhost/O=evchan test", "ca", "server_ext", 30) &&
                    leaf("expired", "/CN=localhost/O=evchan expired", "ca", "server_ext", -1) &&
                    leaf("wrong_host", "/CN=wrong.example", "ca", "wrong_host_ext", 30) &&
                    leaf("untrusted", "/CN=localhost/O=evchan untrusted", "other_ca", "server_ext", 30) &&
                    leaf("client", "/CN=evchan client", "ca", "client_ext", 30);
    if (!ok) c.error = "openssl could not make the test certificates in " + c.dir;
    return c;
  }();
  if (!made.error.empty()) EVCHAN_SKIP(made.error);
  return made;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// A server context presenting `name`.pem / `name`.key.
TlsContext serverContext(const std::string& name = "server") {
  const Certificates& c = certificates();
  TlsContext context(TlsContext::Role::server);
  context.loadCertificateChainFile(c.path(name + ".pem"));
  context.loadPrivateKeyFile(c.path(name + ".key"));
  return context;
}

/// A client context trusting the suite's CA (from memory, to use that path).
TlsContext clientContext() {
  TlsContext context(TlsContext::Role::client);
  context.addCaPem(readFile(certificates().path("ca.pem")));
  return context;
}

// ------------------------------------------------------------ running
/// Where a scenario runs: in tasks of a channel, or on plain threads.
enum class Where { InTask, OnThread };

/// Runs `client` and `server` at once, in two tasks of a two-worker channel
/// or on two threads, and rethrows the first failure.
void runPair(Where where, const std::function<void()>& client, const std::function<void()>& server) {
  if (where == Where::InTask) {
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    TaskHandle serverTask = channel->spawn(server);
    TaskHandle clientTask = channel->spawn(client);
    evchan::test::joinWithin(clientTask, 120s);
    evchan::test::joinWithin(serverTask, 120s);
    return;
  }
  std::exception_ptr failures[2];
  std::thread serverThread([&] {
    try {
      server();
    } catch (...) {
      failures[1] = std::current_exception();
    }
  });
  try {
    client();
  } catch (...) {
    failures[0] = std::current_exception();
  }
  serverThread.join();
  for (auto& failure : failures) {
    if (failure) std::rethrow_exception(failure);
  }
}

/// Both ends of one loopback connection wrapped in TLS (not handshaken).
struct TlsPair {
  TlsStream client;
  TlsStream server;
};

TlsPair tlsPair(const TlsContext& clientSide, const TlsContext& serverSide) {
  ConnectedPair pair = connectPair();
  pair.client.setTimeout(kSocketTimeout);
  pair.server.setTimeout(kSocketTimeout);
  return {TlsStream(clientSide, std::make_unique<TcpSocket>(std::move(pair.client))),
          TlsStream(serverSide, std::make_unique<TcpSocket>(std::move(pair.server)))};
}

/// Handshakes both ends (the client naming `host`; empty: no name), sends
/// `text` from the client, lets the server echo it, and returns what came
/// back to the client.
std::string handshakeAndEcho(TlsPair& pair, const std::string& host, const std::string& text) {
  std::string echoed(text.size(), '\0');
  runPair(
      Where::OnThread,
      [&] {
        pair.client.handshake(host);
        pair.client.writeAll(text.data(), text.size());
        pair.client.readExactly(&echoed[0], echoed.size());
      },
      [&] {
        pair.server.handshake();
        std::string buffer(text.size(), '\0');
        pair.server.readExactly(&buffer[0], buffer.size());
        pair.server.writeAll(buffer.data(), buffer.size());
      });
  return echoed;
}

/// The client's handshake error against a server presenting `serverName`'s
/// certificate (the server's own error is ignored: it sees the alert).
std::error_code clientHandshakeError(const std::string& serverName, const std::string& host = "localhost") {
  TlsPair pair = tlsPair(clientContext(), serverContext(serverName));
  std::error_code clientError, serverError;
  runPair(
      Where::OnThread, [&] { pair.client.handshake(host, clientError); },
      [&] { pair.server.handshake({}, serverError); });
  return clientError;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

class TlsTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(TlsTest);
  CPPUNIT_TEST(testEchoInTasks);
  CPPUNIT_TEST(testEchoOnThreads);
  CPPUNIT_TEST(testSixtyFourMiBBothWaysInTasks);
  CPPUNIT_TEST(testSixtyFourMiBBothWaysOnThreads);
  CPPUNIT_TEST(testWrongHostNameRefused);
  CPPUNIT_TEST(testExpiredCertificateRefused);
  CPPUNIT_TEST(testUntrustedCaRefusedWithReason);
  CPPUNIT_TEST(testVerifyingClientNeedsServerName);
  CPPUNIT_TEST(testInsecureSkipVerificationAcceptsAnyCertificate);
  CPPUNIT_TEST(testClientCertificateRequired);
  CPPUNIT_TEST(testClientCertificateMissing);
  CPPUNIT_TEST(testGarbageInsteadOfClientHello);
  CPPUNIT_TEST(testPeerClosesWithoutCloseNotifyIsTruncation);
  CPPUNIT_TEST(testPeerClosesMidRecordIsTruncation);
  CPPUNIT_TEST(testPeerClosesMidHandshakeIsTruncation);
  CPPUNIT_TEST(testGarbageRecordAfterHandshake);
  CPPUNIT_TEST(testCancelAndCloseEndAReadOnThread);
  CPPUNIT_TEST(testCancelAndCloseEndAReadInTask);
  CPPUNIT_TEST(testCancelledHandshakeGoesOnWhenCalledAgain);
  CPPUNIT_TEST(testCloseNotifyIsEndOfStream);
  CPPUNIT_TEST(testStalledHandshakeTimesOutInTask);
  CPPUNIT_TEST(testStalledHandshakeTimesOutOnThread);
  CPPUNIT_TEST(testMinimumVersionRefusesOlderPeer);
  CPPUNIT_TEST(testAlpnNegotiated);
  CPPUNIT_TEST(testAlpnWithoutCommonProtocol);
  CPPUNIT_TEST(testSessionResumption);
  CPPUNIT_TEST(testReadBeforeHandshakeAndConcurrentReaders);
  CPPUNIT_TEST(testSecondHandshakeWhileOneWaitsIsRefused);
  CPPUNIT_TEST(testBadConfigurationReported);
  CPPUNIT_TEST(testManyConnectionsOnTwoWorkers);
  CPPUNIT_TEST(testClientAgainstOpensslServer);
  CPPUNIT_TEST(testServerAgainstOpensslClient);
  CPPUNIT_TEST(testRenegotiationIsRefused);
  CPPUNIT_TEST(testCancelBetweenTheStepsOfReadExactlyEndsIt);
  CPPUNIT_TEST(testCloseBetweenTheReadsOfACallCancelsItOnThread);
  CPPUNIT_TEST(testCloseBetweenTheReadsOfACallCancelsItInTask);
  CPPUNIT_TEST(testTcpLowerLayerGetsNoDelay);
  CPPUNIT_TEST_SUITE_END();

 public:
  // ---------------------------------------------------------- echo
  void echo(Where where) {
    TlsPair pair = tlsPair(clientContext(), serverContext());
    std::string received;
    runPair(
        where,
        [&] {
          pair.client.handshake("localhost");
          pair.client.writeAll("hello over tls", 14);
          received.resize(14);
          pair.client.readExactly(&received[0], 14);
          pair.client.shutdown();
        },
        [&] {
          pair.server.handshake();
          char buffer[14];
          pair.server.readExactly(buffer, sizeof buffer);
          pair.server.writeAll(buffer, sizeof buffer);
          std::error_code ec;
          char more;
          CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.server.readSome(&more, 1, ec));
          CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == Errc::end_of_stream);
        });
    CPPUNIT_ASSERT_EQUAL(std::string("hello over tls"), received);
    CPPUNIT_ASSERT_EQUAL(std::string("TLSv1.3"), pair.client.protocolVersion());
    CPPUNIT_ASSERT_EQUAL(std::string("TLSv1.3"), pair.server.protocolVersion());
    CPPUNIT_ASSERT_MESSAGE(pair.client.peerCertificateSubject(),
                           contains(pair.client.peerCertificateSubject(), "CN=localhost"));
    CPPUNIT_ASSERT_EQUAL(std::string(), pair.server.peerCertificateSubject());
    CPPUNIT_ASSERT(!pair.client.sessionReused());
  }
  void testEchoInTasks() { echo(Where::InTask); }
  void testEchoOnThreads() { echo(Where::OnThread); }

  // ---------------------------------------------------------- 64 MiB
  // The client writes 64 MiB of a position-dependent pattern while another
  // task (thread) of its own reads the echo back at the same time: one
  // reader and one writer on the same TlsStream.  The server checksums
  // what it got, the client what came back.
  void bulk(Where where) {
    constexpr std::size_t kTotal = std::size_t{64} << 20;
    constexpr std::size_t kChunk = 256 * 1024;
    TlsPair pair = tlsPair(clientContext(), serverContext());
    std::uint64_t sentSum = evchan::test::kChecksumSeed, serverSum = evchan::test::kChecksumSeed,
                  echoedSum = evchan::test::kChecksumSeed;
    auto clientReader = [&] {
      std::vector<unsigned char> buffer(kChunk);
      std::size_t got = 0;
      while (got < kTotal) {
        const std::size_t n = pair.client.readSome(buffer.data(), std::min(kChunk, kTotal - got));
        echoedSum = evchan::test::checksum(echoedSum, buffer.data(), n);
        got += n;
      }
    };
    auto clientWriter = [&] {
      std::vector<unsigned char> buffer(kChunk);
      for (std::size_t offset = 0; offset < kTotal; offset += kChunk) {
        evchan::test::fillPattern(buffer.data(), kChunk, offset);
        sentSum = evchan::test::checksum(sentSum, buffer.data(), kChunk);
        pair.client.writeAll(buffer.data(), kChunk);
      }
    };
    runPair(
        where,
        [&] {
          pair.client.handshake("localhost");
          runPair(where, clientReader, clientWriter);
          pair.client.shutdown();
        },
        [&] {
          pair.server.handshake();
          std::vector<unsigned char> buffer(kChunk);
          std::size_t got = 0;
          while (got < kTotal) {
            const std::size_t n = pair.server.readSome(buffer.data(), buffer.size());
            serverSum = evchan::test::checksum(serverSum, buffer.data(), n);
            pair.server.writeAll(buffer.data(), n);
            got += n;
          }
        });
    CPPUNIT_ASSERT_EQUAL(sentSum, serverSum);
    CPPUNIT_ASSERT_EQUAL(sentSum, echoedSum);
  }
  void testSixtyFourMiBBothWaysInTasks() { bulk(Where::InTask); }
  void testSixtyFourMiBBothWaysOnThreads() { bulk(Where::OnThread); }

  // ---------------------------------------------------------- refusals
  void testWrongHostNameRefused() {
    const std::error_code ec = clientHandshakeError("wrong_host");
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == TlsErrc::verification_failed);
    CPPUNIT_ASSERT_MESSAGE(ec.message(), contains(ec.message(), "hostname mismatch"));
    // The same certificate is fine for the name it was made for.
    CPPUNIT_ASSERT_MESSAGE(clientHandshakeError("wrong_host", "wrong.example").message(),
                           !clientHandshakeError("wrong_host", "wrong.example"));
    // And an address in subjectAltName is checked as an address.
    CPPUNIT_ASSERT(!clientHandshakeError("server", "127.0.0.1"));
    CPPUNIT_ASSERT(clientHandshakeError("server", "127.0.0.2") == TlsErrc::verification_failed);
  }

  void testExpiredCertificateRefused() {
    const std::error_code ec = clientHandshakeError("expired");
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == TlsErrc::verification_failed);
    CPPUNIT_ASSERT_MESSAGE(ec.message(), contains(ec.message(), "certificate has expired"));
  }

  // The throwing form names the operation, the peer and OpenSSL's reason.
  void testUntrustedCaRefusedWithReason() {
    TlsPair pair = tlsPair(clientContext(), serverContext("untrusted"));
    std::string what;
    std::error_code code, serverError;
    runPair(
        Where::OnThread,
        [&] {
          try {
            pair.client.handshake("localhost");
          } catch (const SystemError& error) {
            what = error.what();
            code = error.code();
          }
        },
        [&] { pair.server.handshake({}, serverError); });
    CPPUNIT_ASSERT_MESSAGE(what, code == TlsErrc::verification_failed);
    CPPUNIT_ASSERT_EQUAL(std::string("tls"), std::string(code.category().name()));
    CPPUNIT_ASSERT_MESSAGE(what, contains(what, "tls handshake (peer 127.0.0.1:"));
    CPPUNIT_ASSERT_MESSAGE(what, contains(what, "certificate verify failed: unable to get local issuer certificate"));
    // The server learnt of it by the client's alert.
    CPPUNIT_ASSERT_MESSAGE(serverError.message(), serverError == TlsErrc::verification_failed);
  }

  void testVerifyingClientNeedsServerName() {
    TlsPair pair = tlsPair(clientContext(), serverContext());
    std::error_code ec;
    pair.client.handshake({}, ec);
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == TlsErrc::missing_server_name);
  }

  void testInsecureSkipVerificationAcceptsAnyCertificate() {
    TlsContext client(TlsContext::Role::client);
    client.insecureSkipVerification();
    TlsPair pair = tlsPair(client, serverContext("untrusted"));
    const std::string echoed = handshakeAndEcho(pair, {}, "secret");
    CPPUNIT_ASSERT(pair.client.isHandshaken());
    // A real TLS session with the untrusted server, not a skipped one.
    CPPUNIT_ASSERT_EQUAL(std::string("secret"), echoed);
    CPPUNIT_ASSERT_EQUAL(std::string("TLSv1.3"), pair.client.protocolVersion());
    CPPUNIT_ASSERT_MESSAGE(pair.client.peerCertificateSubject(),
                           contains(pair.client.peerCertificateSubject(), "O=evchan untrusted"));
  }

  TlsContext verifyingServer() {
    TlsContext server = serverContext();
    server.loadCaFile(certificates().path("ca.pem"));
    server.requireClientCertificate();
    return server;
  }

  void testClientCertificateRequired() {
    TlsContext client = clientContext();
    const Certificates& c = certificates();
    client.useCertificateChainPem(readFile(c.path("client.pem")));
    client.usePrivateKeyPem(readFile(c.path("client.key")));
    TlsPair pair = tlsPair(client, verifyingServer());
    runPair(
        Where::InTask,
        [&] {
          pair.client.handshake("localhost");
          pair.client.writeAll("x", 1);
        },
        [&] {
          pair.server.handshake();
          char x;
          pair.server.readExactly(&x, 1);
        });
    CPPUNIT_ASSERT_MESSAGE(pair.server.peerCertificateSubject(),
                           contains(pair.server.peerCertificateSubject(), "CN=evchan client"));
  }

  // With TLS 1.3 the client finishes its handshake before the server
  // checks it: the refusal reaches the client at its first read.
  void testClientCertificateMissing() {
    TlsPair pair = tlsPair(clientContext(), verifyingServer());
    std::error_code clientError, serverError;
    runPair(
        Where::InTask,
        [&] {
          pair.client.handshake("localhost", clientError);
          if (clientError) return;
          char x;
          pair.client.readSome(&x, 1, clientError);
        },
        [&] { pair.server.handshake({}, serverError); });
    CPPUNIT_ASSERT_MESSAGE(serverError.message(), serverError == TlsErrc::verification_failed);
    CPPUNIT_ASSERT_MESSAGE(clientError.message(), clientError == TlsErrc::verification_failed);
  }

  // ---------------------------------------------------------- bad peers
  void testGarbageInsteadOfClientHello() {
    ConnectedPair tcp = connectPair();
    tcp.server.setTimeout(kSocketTimeout);
    TlsStream server(serverContext(), std::make_unique<TcpSocket>(std::move(tcp.server)));
    const std::string garbage = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    tcp.client.writeAll(garbage.data(), garbage.size());
    std::error_code ec;
    server.handshake({}, ec);
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == TlsErrc::handshake_failed);
    CPPUNIT_ASSERT_EQUAL(std::string("tls"), std::string(ec.category().name()));
    CPPUNIT_ASSERT_MESSAGE(ec.message(), !ec.message().empty() && !contains(ec.message(), "OpenSSL error"));
    CPPUNIT_ASSERT(!server.isHandshaken());
    // Random bytes too.
    ConnectedPair tcp2 = connectPair();
    tcp2.server.setTimeout(kSocketTimeout);
    TlsStream server2(serverContext(), std::make_unique<TcpSocket>(std::move(tcp2.server)));
    std::vector<unsigned char> noise(4096);
    evchan::test::fillPattern(noise.data(), noise.size(), 12345);
    tcp2.client.writeAll(noise.data(), noise.size());
    server2.handshake({}, ec);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(ec), ec == TlsErrc::handshake_failed);
    CPPUNIT_ASSERT(!server2.isHandshaken());
  }

  void testPeerClosesWithoutCloseNotifyIsTruncation() {
    TlsPair pair = tlsPair(clientContext(), serverContext());
    std::error_code ec;
    std::string got(5, '\0');
    runPair(
        Where::InTask,
        [&] {
          pair.client.handshake("localhost");
          pair.client.readExactly(&got[0], 5);
          char more;
          pair.client.readSome(&more, 1, ec);
        },
        [&] {
          pair.server.handshake();
          pair.server.writeAll("hello", 5);
          pair.server.close();  // no close_notify
        });
    CPPUNIT_ASSERT_EQUAL(std::string("hello"), got);
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == TlsErrc::truncated);
    CPPUNIT_ASSERT(ec != Errc::end_of_stream);
  }

  void testCloseNotifyIsEndOfStream() {
    TlsPair pair = tlsPair(clientContext(), serverContext());
    std::error_code ec;
    runPair(
        Where::OnThread,
        [&] {
          pair.client.handshake("localhost");
          char more;
          pair.client.readSome(&more, 1, ec);
        },
        [&] {
          pair.server.handshake();
          pair.server.shutdown();
          pair.server.shutdown();  // idempotent
          pair.server.close();
        });
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == Errc::end_of_stream);
  }

  // A record cut off by the peer's close: the client has the header and
  // part of the body when the connection ends, which is truncation, not
  // the end of the stream and not a wait.
  void testPeerClosesMidRecordIsTruncation() {
    TlsPair pair = tlsPair(clientContext(), serverContext());
    runPair(
        Where::OnThread, [&] { pair.client.handshake("localhost"); }, [&] { pair.server.handshake(); });
    // An application-data record header announcing 64 bytes, then 10.
    const unsigned char partial[15] = {0x17, 0x03, 0x03, 0x00, 0x40, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    pair.server.lowerLayer().writeAll(partial, sizeof partial);
    pair.server.close();
    std::error_code ec;
    char byte;
    const auto waited = evchan::test::timed([&] { pair.client.readSome(&byte, 1, ec); });
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(ec), ec == TlsErrc::truncated);
    CPPUNIT_ASSERT(waited < 10s);  // far below the 20 s timeout
    // And it stays so.
    pair.client.readSome(&byte, 1, ec);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(ec), ec == TlsErrc::truncated);
  }

  // The server reads the ClientHello and hangs up: the client's
  // handshake is truncated (tls_stream.h), not a timeout.
  void testPeerClosesMidHandshakeIsTruncation() {
    ConnectedPair tcp = connectPair();
    tcp.client.setTimeout(kSocketTimeout);
    tcp.server.setTimeout(kSocketTimeout);
    TlsStream client(clientContext(), std::make_unique<TcpSocket>(std::move(tcp.client)));
    std::error_code ec;
    runPair(
        Where::OnThread, [&] { client.handshake("localhost", ec); },
        [&] {
          // The whole record (so that closing sends a FIN, not a reset).
          unsigned char header[5];
          tcp.server.readExactly(header, sizeof header);
          CPPUNIT_ASSERT_EQUAL(0x16, static_cast<int>(header[0]));
          std::vector<unsigned char> body(static_cast<std::size_t>(header[3]) << 8 | header[4]);
          tcp.server.readExactly(body.data(), body.size());
          tcp.server.close();
        });
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(ec), ec == TlsErrc::truncated);
    CPPUNIT_ASSERT(!client.isHandshaken());
  }

  // Bytes that are not a record after the handshake: the read fails with a
  // TLS error (not the end of the stream, not data), and so does the next.
  void testGarbageRecordAfterHandshake() {
    TlsPair pair = tlsPair(clientContext(), serverContext());
    runPair(
        Where::OnThread, [&] { pair.client.handshake("localhost"); }, [&] { pair.server.handshake(); });
    const std::string garbage = "HTTP/1.1 400 Bad Request\r\n\r\n";
    pair.server.lowerLayer().writeAll(garbage.data(), garbage.size());
    std::error_code ec;
    char buffer[64];
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.client.readSome(buffer, sizeof buffer, ec));
    std::printf("garbage record after the handshake: %s\n", evchan::test::describe(ec).c_str());
    CPPUNIT_ASSERT_EQUAL(std::string("tls"), std::string(ec.category().name()));
    CPPUNIT_ASSERT(ec != Errc::end_of_stream && ec != TlsErrc::truncated);
    CPPUNIT_ASSERT(!ec.message().empty());
    std::error_code again;
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.client.readSome(buffer, sizeof buffer, again));
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(again), again);
  }

  // A reader waiting on the lower stream: its cancel() ends the read with
  // operation_canceled and the stream goes on (the next record arrives
  // whole); close() ends the next read too, and later calls are not_open.
  void cancelAndClose(Where where) {
    TlsPair pair = tlsPair(clientContext(), serverContext());
    runPair(
        where, [&] { pair.client.handshake("localhost"); }, [&] { pair.server.handshake(); });
    auto& lower = static_cast<TcpSocket&>(pair.client.lowerLayer());
    std::atomic<int> phase{0};
    std::error_code cancelled, afterError, closed;
    std::string after(5, '\0');
    auto reader = [&] {
      char byte;
      phase = 1;
      pair.client.readSome(&byte, 1, cancelled);
      phase = 2;
      // The test's thread may cancel once more after the first read
      // ended: a cancelled read is retried, and no byte may be lost.
      for (std::size_t got = 0; got < after.size();) {
        std::error_code ec;
        got += pair.client.readSome(&after[got], after.size() - got, ec);
        if (ec && ec != std::errc::operation_canceled) {
          afterError = ec;
          break;
        }
      }
      phase = 3;
      pair.client.readSome(&byte, 1, closed);
      phase = 4;
    };
    std::unique_ptr<EventChannel> channel;
    TaskHandle task;
    std::thread thread;
    if (where == Where::InTask) {
      channel = evchan::test::makeChannel(1);
      task = channel->spawn(reader);
    } else {
      thread = std::thread(reader);
    }
    auto finish = [&] {
      if (where == Where::InTask) {
        evchan::test::joinWithin(task);
      } else {
        thread.join();
      }
    };
    // Every step is judged once the reader has ended (close() ends it
    // whatever went wrong), so that a failure never leaves it running.
    const bool started = evchan::test::eventually([&] { return phase.load() == 1; });
    std::this_thread::sleep_for(50ms);
    const bool waitedForCancel = started && phase.load() == 1;
    // cancel() until the read ends (one that lands before the read waits
    // may be absorbed).
    const bool endedByCancel = waitedForCancel && evchan::test::eventually([&] {
                                 lower.cancel();
                                 return phase.load() >= 2;
                               });
    if (endedByCancel) pair.server.writeAll("after", 5);
    const bool readAfter = endedByCancel && evchan::test::eventually([&] { return phase.load() >= 3; });
    std::this_thread::sleep_for(50ms);
    const int phaseBeforeClose = phase.load();
    pair.client.close();
    finish();
    CPPUNIT_ASSERT_MESSAGE("the reader did not start", started);
    CPPUNIT_ASSERT_MESSAGE("the read ended before cancel(): " + evchan::test::describe(cancelled), waitedForCancel);
    CPPUNIT_ASSERT_MESSAGE("cancel() did not end the read", endedByCancel);
    CPPUNIT_ASSERT_MESSAGE("the record after the cancel did not arrive: " + evchan::test::describe(afterError),
                           readAfter);
    CPPUNIT_ASSERT_EQUAL_MESSAGE("the last read did not wait for close()", 3, phaseBeforeClose);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(cancelled), cancelled == std::errc::operation_canceled);
    ASSERT_NO_ERROR(afterError);
    CPPUNIT_ASSERT_EQUAL(std::string("after"), after);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(closed),
                           closed == std::errc::operation_canceled || closed == Errc::not_open);
    std::error_code ec;
    pair.client.writeSome("x", 1, ec);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(ec), ec == Errc::not_open);
  }
  // A client's handshake waiting for a server that has not started: the
  // lower stream's cancel() ends it with operation_canceled, nothing
  // lost; once the server runs, handshake() again completes and data
  // flows both ways.
  void testCancelledHandshakeGoesOnWhenCalledAgain() {
    TlsPair pair = tlsPair(clientContext(), serverContext());
    auto& lower = static_cast<TcpSocket&>(pair.client.lowerLayer());
    std::error_code first;
    std::atomic<bool> ended{false};
    std::thread client([&] {
      pair.client.handshake("localhost", first);
      ended = true;
    });
    std::this_thread::sleep_for(50ms);
    const bool waited = !ended.load();
    // Repeated: a cancel() that lands before the handshake waits may be
    // absorbed; nothing else runs on the client meanwhile.
    const bool endedByCancel = evchan::test::eventually([&] {
      lower.cancel();
      return ended.load();
    });
    client.join();
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(first), waited);
    CPPUNIT_ASSERT(endedByCancel);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(first), first == std::errc::operation_canceled);
    CPPUNIT_ASSERT(!pair.client.isHandshaken());
    const std::string echoed = handshakeAndEcho(pair, "localhost", "ping");
    CPPUNIT_ASSERT(pair.client.isHandshaken());
    CPPUNIT_ASSERT_EQUAL(std::string("ping"), echoed);
  }

  void testCancelAndCloseEndAReadOnThread() { cancelAndClose(Where::OnThread); }
  void testCancelAndCloseEndAReadInTask() { cancelAndClose(Where::InTask); }

  // A server that accepts and then says nothing: the client's handshake
  // ends by the lower stream's timeout.
  void stalledHandshake(Where where) {
    ConnectedPair tcp = connectPair();
    tcp.client.setTimeout(300ms);
    TlsStream client(clientContext(), std::make_unique<TcpSocket>(std::move(tcp.client)));
    std::error_code ec;
    const auto started = std::chrono::steady_clock::now();
    runPair(
        where, [&] { client.handshake("localhost", ec); }, [] {});
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == std::errc::timed_out);
    const auto waited = std::chrono::steady_clock::now() - started;
    CPPUNIT_ASSERT_MESSAGE(evchan::test::elapsedText(waited), waited >= 290ms);  // the timeout, not another end
    CPPUNIT_ASSERT(waited < 10s * evchan::test::slowdown());
    // The server never answered, but it got the ClientHello.
    char first;
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, tcp.server.readSome(&first, 1));
    CPPUNIT_ASSERT_EQUAL(0x16, static_cast<int>(static_cast<unsigned char>(first)));  // handshake record
  }
  void testStalledHandshakeTimesOutInTask() { stalledHandshake(Where::InTask); }
  void testStalledHandshakeTimesOutOnThread() { stalledHandshake(Where::OnThread); }

  void testMinimumVersionRefusesOlderPeer() {
    TlsContext server = serverContext();
    server.setMinimumVersion(evchan::TlsVersion::tls1_3);
    // evchan has no way to cap a client at TLS 1.2, so the client that
    // offers only 1.2 is `openssl s_client -tls1_2`.
    // Port 0: a port found free and listened on later may be taken
    // meanwhile by another suite running at the same time.
    TcpListener listener = TcpListener::listen(evchan::Endpoint("127.0.0.1", 0));
    const int port = listener.localAddress().port();
    listener.setTimeout(kSocketTimeout);
    OpensslChild child({"s_client", "-connect", "127.0.0.1:" + std::to_string(port), "-tls1_2", "-quiet"});
    TcpSocket accepted = listener.accept();
    accepted.setTimeout(kSocketTimeout);
    TlsStream stream(server, std::make_unique<TcpSocket>(std::move(accepted)));
    std::error_code ec;
    stream.handshake({}, ec);
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == TlsErrc::protocol_version);
  }

  void testAlpnNegotiated() {
    TlsContext client = clientContext();
    client.setAlpnProtocols({"h2", "http/1.1"});
    TlsContext server = serverContext();
    server.setAlpnProtocols({"http/1.1", "spdy/3"});
    TlsPair pair = tlsPair(client, server);
    runPair(
        Where::InTask, [&] { pair.client.handshake("localhost"); }, [&] { pair.server.handshake(); });
    CPPUNIT_ASSERT_EQUAL(std::string("http/1.1"), pair.client.alpnProtocol());
    CPPUNIT_ASSERT_EQUAL(std::string("http/1.1"), pair.server.alpnProtocol());
    std::error_code ec;
    client.setAlpnProtocols({std::string(256, 'x')}, ec);
    CPPUNIT_ASSERT(ec == std::errc::invalid_argument);
  }

  // No protocol in common: the server chooses none and the handshake goes
  // on (docs/tls.md); both sides then report none.
  void testAlpnWithoutCommonProtocol() {
    TlsContext client = clientContext();
    client.setAlpnProtocols({"h2"});
    TlsContext server = serverContext();
    server.setAlpnProtocols({"http/1.1"});
    TlsPair pair = tlsPair(client, server);
    CPPUNIT_ASSERT_EQUAL(std::string("ok"), handshakeAndEcho(pair, "localhost", "ok"));
    CPPUNIT_ASSERT_EQUAL(std::string(), pair.client.alpnProtocol());
    CPPUNIT_ASSERT_EQUAL(std::string(), pair.server.alpnProtocol());
  }

  // The second connection through the same client context resumes the
  // session the first one got (TLS 1.3 tickets come after the handshake,
  // so the first connection reads once).
  void testSessionResumption() {
    TlsContext client = clientContext();
    TlsContext server = serverContext();
    // Port 0: a port found free and listened on later may be taken
    // meanwhile by another suite running at the same time.
    TcpListener listener = TcpListener::listen(evchan::Endpoint("127.0.0.1", 0));
    const int port = listener.localAddress().port();
    listener.setTimeout(kSocketTimeout);
    bool reused[2] = {true, false};
    for (int round = 0; round < 2; ++round) {
      std::unique_ptr<TlsStream> clientStream;
      runPair(
          Where::InTask,
          [&] {
            auto socket = std::make_unique<TcpSocket>(TcpSocket::connect(evchan::Endpoint("127.0.0.1", port)));
            socket->setTimeout(kSocketTimeout);
            clientStream = std::make_unique<TlsStream>(client, std::move(socket));
            clientStream->handshake("localhost");
            char byte;
            clientStream->readExactly(&byte, 1);
            reused[round] = clientStream->sessionReused();
            clientStream->shutdown();
          },
          [&] {
            auto socket = std::make_unique<TcpSocket>(listener.accept());
            socket->setTimeout(kSocketTimeout);
            TlsStream stream(server, std::move(socket));
            stream.handshake();
            stream.writeAll("!", 1);
            char byte;
            std::error_code ec;
            stream.readSome(&byte, 1, ec);
            CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == Errc::end_of_stream);
          });
    }
    CPPUNIT_ASSERT_MESSAGE("the first connection cannot resume", !reused[0]);
    CPPUNIT_ASSERT_MESSAGE("the second connection did not resume the session", reused[1]);
  }

  // ---------------------------------------------------------- misuse
  void testReadBeforeHandshakeAndConcurrentReaders() {
    TlsPair pair = tlsPair(clientContext(), serverContext());
    std::error_code ec;
    char byte;
    pair.client.readSome(&byte, 1, ec);
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == TlsErrc::not_handshaken);
    pair.client.writeSome("x", 1, ec);
    CPPUNIT_ASSERT(ec == TlsErrc::not_handshaken);
    pair.client.shutdown(ec);
    CPPUNIT_ASSERT(ec == TlsErrc::not_handshaken);
    runPair(
        Where::OnThread, [&] { pair.client.handshake("localhost"); }, [&] { pair.server.handshake(); });
    // One reader waits; a second concurrent reader is refused, not let in.
    // Two threads read at once: whichever comes second is refused at once
    // (no sleep decides which one waits).
    struct Reader {
      std::error_code error;
      char byte = 0;
      std::atomic<bool> done{false};
    } readers[2];
    std::thread threads[2];
    for (Reader& reader : readers) {
      threads[&reader - readers] = std::thread([&] {
        pair.client.readSome(&reader.byte, 1, reader.error);
        reader.done = true;
      });
    }
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return readers[0].done || readers[1].done; }));
    Reader& refused = readers[0].done ? readers[0] : readers[1];
    Reader& waiting = readers[0].done ? readers[1] : readers[0];
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(refused.error), refused.error == Errc::socket_busy);
    std::this_thread::sleep_for(20ms);
    CPPUNIT_ASSERT(!waiting.done);
    // A writer while the reader waits is fine; then the server's byte
    // wakes the reader.
    pair.client.writeAll("z", 1);
    char b;
    pair.server.readExactly(&b, 1);
    CPPUNIT_ASSERT_EQUAL('z', b);
    CPPUNIT_ASSERT(!waiting.done);
    pair.server.writeAll("y", 1);
    for (std::thread& thread : threads) thread.join();
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(waiting.error), !waiting.error);
    CPPUNIT_ASSERT_EQUAL('y', waiting.byte);
    // A closed or empty stream.
    TlsStream empty;
    empty.readSome(&b, 1, ec);
    CPPUNIT_ASSERT(ec == Errc::not_open);
    empty.handshake("localhost", ec);
    CPPUNIT_ASSERT(ec == Errc::not_open);
    pair.client.close();
    pair.client.writeSome("x", 1, ec);
    CPPUNIT_ASSERT(ec == Errc::not_open);
  }

  // What tls_stream.h promises while a handshake waits for its peer: a
  // second handshake() is socket_busy, a read or write not_handshaken.
  void testSecondHandshakeWhileOneWaitsIsRefused() {
    TlsPair pair = tlsPair(clientContext(), serverContext());
    struct Attempt {
      std::error_code error;
      std::atomic<bool> done{false};
    } attempts[2];
    std::thread threads[2];
    for (Attempt& attempt : attempts) {
      threads[&attempt - attempts] = std::thread([&] {
        pair.client.handshake("localhost", attempt.error);
        attempt.done = true;
      });
    }
    // The server has not answered, so one of the two waits; whichever came
    // second is refused at once.
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return attempts[0].done || attempts[1].done; }));
    Attempt& refused = attempts[0].done ? attempts[0] : attempts[1];
    Attempt& waiting = attempts[0].done ? attempts[1] : attempts[0];
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(refused.error), refused.error == Errc::socket_busy);
    CPPUNIT_ASSERT(!waiting.done);
    std::error_code ec;
    char byte;
    pair.client.readSome(&byte, 1, ec);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(ec), ec == TlsErrc::not_handshaken);
    pair.client.writeSome("x", 1, ec);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(ec), ec == TlsErrc::not_handshaken);
    pair.server.handshake();
    for (std::thread& thread : threads) thread.join();
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(waiting.error), !waiting.error);
    CPPUNIT_ASSERT(pair.client.isHandshaken());
    // And the connection works.
    pair.client.writeAll("k", 1);
    pair.server.readExactly(&byte, 1);
    CPPUNIT_ASSERT_EQUAL('k', byte);
  }

  void testBadConfigurationReported() {
    TlsContext context(TlsContext::Role::server);
    std::error_code ec;
    context.loadCertificateChainFile(certificates().path("no-such-file.pem"), ec);
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == std::errc::no_such_file_or_directory);
    // Text that is not PEM and a key that is not the certificate's are
    // OpenSSL's reasons (docs/tls.md): codes of the "tls" category.
    context.usePrivateKeyPem("not a key", ec);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(ec), ec && std::string(ec.category().name()) == "tls");
    CPPUNIT_ASSERT_MESSAGE(ec.message(), !ec.message().empty());
    context.addCaPem("", ec);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(ec), ec && std::string(ec.category().name()) == "tls");
    // A key that is not the certificate's.
    context.loadCertificateChainFile(certificates().path("server.pem"));
    context.loadPrivateKeyFile(certificates().path("client.key"), ec);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(ec), ec && std::string(ec.category().name()) == "tls");
    CPPUNIT_ASSERT_MESSAGE(ec.message(), contains(ec.message(), "mismatch"));
    CPPUNIT_ASSERT_THROW(context.loadCaFile(certificates().path("missing-ca.pem")), SystemError);
  }

  // ---------------------------------------------------------- scale
  // Many TLS connections at once on a two-worker channel: a task per
  // connection on each side, each echoing 1 KiB and shutting down.
  void testManyConnectionsOnTwoWorkers() {
    const int connections = evchan::test::slowdown() > 1 ? 200 : 1000;
    TlsContext client = clientContext();
    TlsContext server = serverContext();
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    TcpListener listener = TcpListener::listen(evchan::Endpoint("127.0.0.1", 0));
    const int port = listener.localAddress().port();
    std::atomic<int> served{0}, echoed{0};
    std::atomic<int> failures{0};
    std::string firstFailure;
    std::mutex failureLock;
    auto fail = [&](const std::exception& e) {
      std::lock_guard<std::mutex> lock(failureLock);
      if (failures++ == 0) firstFailure = e.what();
    };
    TaskHandle acceptor = channel->spawn([&] {
      std::vector<TaskHandle> handlers;
      for (int i = 0; i < connections; ++i) {
        auto socket = std::make_unique<TcpSocket>(listener.accept());
        socket->setTimeout(60s);
        handlers.push_back(channel->spawn([&, socket = std::move(socket)]() mutable {
          try {
            TlsStream stream(server, std::move(socket));
            stream.handshake();
            char buffer[1024];
            stream.readExactly(buffer, sizeof buffer);
            stream.writeAll(buffer, sizeof buffer);
            stream.shutdown();
            ++served;
          } catch (const std::exception& e) {
            fail(e);
          }
        }));
      }
      for (TaskHandle& handler : handlers) handler.join();
    });
    std::vector<TaskHandle> clients;
    for (int i = 0; i < connections; ++i) {
      clients.push_back(channel->spawn([&, i] {
        try {
          auto socket = std::make_unique<TcpSocket>(TcpSocket::connect(evchan::Endpoint("127.0.0.1", port)));
          socket->setTimeout(60s);
          TlsStream stream(client, std::move(socket));
          stream.handshake("localhost");
          std::vector<unsigned char> out(1024), in(1024);
          evchan::test::fillPattern(out.data(), out.size(), static_cast<std::uint64_t>(i) * 1024);
          stream.writeAll(out.data(), out.size());
          stream.readExactly(in.data(), in.size());
          if (in == out) ++echoed;
        } catch (const std::exception& e) {
          fail(e);
        }
      }));
    }
    for (TaskHandle& c : clients) evchan::test::joinWithin(c, 300s);
    evchan::test::joinWithin(acceptor, 300s);
    CPPUNIT_ASSERT_EQUAL_MESSAGE(firstFailure, 0, failures.load());
    CPPUNIT_ASSERT_EQUAL(connections, served.load());
    CPPUNIT_ASSERT_EQUAL(connections, echoed.load());
  }

  // ---------------------------------------------------------- interop
  // evchan's client against `openssl s_server -www`, which answers a GET
  // with a status page.
  void testClientAgainstOpensslServer() {
    const Certificates& c = certificates();
    const int port = evchan::test::unusedPort();
    OpensslChild child({"s_server", "-accept", "127.0.0.1:" + std::to_string(port), "-cert", c.path("server.pem"),
                        "-key", c.path("server.key"), "-www", "-naccept", "1", "-quiet"});
    TcpSocket socket = connectWhenListening(port);
    socket.setTimeout(kSocketTimeout);
    TlsContext client = clientContext();
    client.setAlpnProtocols({"http/1.1"});
    TlsStream stream(client, std::make_unique<TcpSocket>(std::move(socket)));
    std::string response;
    runPair(
        Where::InTask,
        [&] {
          stream.handshake("localhost");
          const std::string request = "GET / HTTP/1.0\r\n\r\n";
          stream.writeAll(request.data(), request.size());
          char buffer[4096];
          for (;;) {
            std::error_code ec;
            const std::size_t n = stream.readSome(buffer, sizeof buffer, ec);
            if (ec) {
              CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == Errc::end_of_stream || ec == TlsErrc::truncated);
              break;
            }
            response.append(buffer, n);
          }
        },
        [] {});
    CPPUNIT_ASSERT_MESSAGE(response.substr(0, 200), contains(response, "HTTP/1.0 200 ok"));
    CPPUNIT_ASSERT_EQUAL(std::string("TLSv1.3"), stream.protocolVersion());
    stream.close();  // s_server waits for the connection's end
    const int status = child.wait();
    CPPUNIT_ASSERT_MESSAGE("openssl s_server exit", WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }

  // evchan's server against `openssl s_client`, which checks the
  // certificate and host name, sends its stdin and prints what comes back.
  void testServerAgainstOpensslClient() {
    const Certificates& c = certificates();
    TcpListener listener = TcpListener::listen(evchan::Endpoint("127.0.0.1", 0));
    listener.setTimeout(kSocketTimeout);
    const int port = listener.localAddress().port();
    OpensslChild child({"s_client", "-connect", "127.0.0.1:" + std::to_string(port), "-CAfile", c.path("ca.pem"),
                        "-verify_hostname", "localhost", "-verify_return_error", "-servername", "localhost",
                        "-quiet"});
    child.write("hello from s_client\n");
    TcpSocket accepted = listener.accept();
    accepted.setTimeout(kSocketTimeout);
    TlsStream stream(serverContext(), std::make_unique<TcpSocket>(std::move(accepted)));
    std::string line;
    runPair(
        Where::InTask,
        [&] {
          stream.handshake();
          evchan::BufferedReader reader(stream);
          line = reader.readLine(1024);
          const std::string reply = "hello from evchan\n";
          stream.writeAll(reply.data(), reply.size());
          stream.shutdown();
          stream.close();
        },
        [] {});
    CPPUNIT_ASSERT_EQUAL(std::string("hello from s_client"), line);
    const std::string printed = child.readAll();
    CPPUNIT_ASSERT_MESSAGE(printed, contains(printed, "hello from evchan"));
    child.wait();
  }

  // A TLS 1.2 client that asks to renegotiate (s_client's "R" command) is
  // refused (docs/tls.md): the server answers no_renegotiation, the client
  // gives the connection up, and the server's read ends with a TLS error
  // at once.  Were renegotiation let through, the session would go on and
  // the read would wait for data until the socket's timeout.
  void testRenegotiationIsRefused() {
    const Certificates& c = certificates();
    TcpListener listener = TcpListener::listen(evchan::Endpoint("127.0.0.1", 0));
    listener.setTimeout(kSocketTimeout);
    const int port = listener.localAddress().port();
    OpensslChild child({"s_client", "-connect", "127.0.0.1:" + std::to_string(port), "-CAfile", c.path("ca.pem"),
                        "-servername", "localhost", "-tls1_2"});
    child.write("before\n");
    TcpSocket accepted = listener.accept();
    accepted.setTimeout(kSocketTimeout);
    TlsStream stream(serverContext(), std::make_unique<TcpSocket>(std::move(accepted)));
    std::string line;
    std::error_code ec;
    evchan::Duration waited{};
    runPair(
        Where::InTask,
        [&] {
          stream.handshake();
          evchan::BufferedReader reader(stream);
          line = reader.readLine(1024);
          child.write("R\n");  // a line of its own: s_client reads it as the command
          const auto start = std::chrono::steady_clock::now();
          char byte;
          while (!ec) reader.readSome(&byte, 1, ec);
          waited = std::chrono::steady_clock::now() - start;
        },
        [] {});
    CPPUNIT_ASSERT_EQUAL(std::string("before"), line);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(ec), ec.category() == evchan::tls_category());
    CPPUNIT_ASSERT_MESSAGE("the refusal took the socket's timeout", waited < kSocketTimeout);
    CPPUNIT_ASSERT_EQUAL(std::string("TLSv1.2"), stream.protocolVersion());
    std::printf("renegotiation refused: %s\n", evchan::test::describe(ec).c_str());
    child.wait();
  }

  // readExactly() of two bytes when one TLS record of one byte came: the
  // lower socket's cancel() that lands between its two reads of the socket
  // must end it, as it ends one on the socket itself; before TlsStream
  // carried the mark down, the second read took a fresh one and waited
  // for the socket's timeout.
  void testCancelBetweenTheStepsOfReadExactlyEndsIt() {
    TlsPair pair = tlsPair(clientContext(), serverContext());
    runPair(
        Where::OnThread, [&] { pair.client.handshake("localhost"); }, [&] { pair.server.handshake({}); });
    auto& clientSocket = static_cast<TcpSocket&>(pair.client.lowerLayer());
    clientSocket.setTimeout(2s);  // a lost cancel() ends the round by this
    // One byte through first, so that the client has also read the
    // session tickets a TLS 1.3 server sends after the handshake.
    pair.server.writeAll("w", 1);
    char first = 0;
    pair.client.readExactly(&first, 1);
    CPPUNIT_ASSERT_EQUAL('w', first);
    const evchan::test::UnreadBytes unread(clientSocket);
    CPPUNIT_ASSERT_EQUAL(0L, unread.count());
    // What the race reads from and cancels: the TLS stream, cancelled
    // through the socket beneath it.
    struct CancellableTls {
      TlsStream& tls;
      TcpSocket& socket;
      std::size_t readExactly(void* buffer, std::size_t size, std::error_code& ec) {
        return tls.readExactly(buffer, size, ec);
      }
      void cancel() { socket.cancel(); }
    } reader{pair.client, clientSocket};
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
    evchan::test::CancelBetweenSteps race(evchan::test::slowdown() > 1 ? 50 : 200);
    TaskHandle readerTask = channel->spawn([&] { race.read(reader); });
    race.writeAndCancel(
        pair.server, reader, [&] { return evchan::test::allWorkersIdle(*channel); },
        [&] { return unread.count() == 0; });
    race.stopped = true;  // a reader left waiting after an early stop ends
    evchan::test::eventually([&] {
      reader.cancel();
      return readerTask.done();
    });
    evchan::test::joinWithin(readerTask);
    CPPUNIT_ASSERT_MESSAGE(race.wrong, race.wrong.empty());
    CPPUNIT_ASSERT_EQUAL(race.rounds, race.finished.load());
  }

  // A close() of the TlsStream that lands between two reads of one call
  // (readExactly(), a BufferedReader's readUntil() and peek()), as another
  // thread's would, ends the call with operation_canceled, as it does on
  // the socket beneath; not_open is for calls begun after it.  It said
  // not_open before.
  void testCloseBetweenTheReadsOfACallCancelsItOnThread() { closeBetweenReads(Where::OnThread); }
  void testCloseBetweenTheReadsOfACallCancelsItInTask() { closeBetweenReads(Where::InTask); }

  // Records go out whole: a TcpSocket under TLS gets TCP_NODELAY, so that
  // a server's first message after a TLS 1.3 handshake is not held back
  // until the client acknowledges the session tickets (by its delayed ACK:
  // 40 ms on Linux, before).  lowerLayer() can turn it off again.
  void testTcpLowerLayerGetsNoDelay() {
    using evchan::test::HostSocketOption;
    using evchan::test::readHostSocketOption;
    ConnectedPair pair = connectPair();
    CPPUNIT_ASSERT_EQUAL(0, readHostSocketOption(pair.server, HostSocketOption::noDelay));
    TlsStream server(serverContext(), std::make_unique<TcpSocket>(std::move(pair.server)));
    auto& socket = static_cast<TcpSocket&>(server.lowerLayer());
    CPPUNIT_ASSERT_EQUAL(1, readHostSocketOption(socket, HostSocketOption::noDelay));
    socket.setNoDelay(false);
    CPPUNIT_ASSERT_EQUAL(0, readHostSocketOption(socket, HostSocketOption::noDelay));
  }

 private:
  void closeBetweenReads(Where where) {
    for (const std::string call : {"readUntil", "peek", "readExactly"}) {
      TlsPair pair = tlsPair(clientContext(), serverContext());
      runPair(
          Where::OnThread, [&] { pair.client.handshake("localhost"); }, [&] { pair.server.handshake({}); });
      runPair(
          where, [&] { evchan::test::checkCloseBetweenReadsCancels(pair.client, pair.server, call); }, [] {});
    }
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(TlsTest);
