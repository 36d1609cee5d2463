// SPDX-License-Identifier: Apache-2.0
// TlsStream and BufferedReader against peers that misbehave, and against
// the task API ending their waits, through the public API only: a write cut
// short by the lower stream's timeout, an over-long record, a ClientHello
// and then a close, a plain-text answer to a ClientHello, data after
// close_notify, a self-signed server, TLS 1.2 against a TLS 1.3-only client,
// renegotiation asked by `openssl s_server`, a server name with a NUL, key
// updates in a full-duplex echo, while both ends write a large message
// before reading, while our side cannot send, and a thousand on a
// connection only read; handshakes and reads parked in
// tasks ended by TaskHandle::cancel(), a deadline, the channel's shutdown
// and close() from another thread; BufferedReader's delimiters split across
// records, over-long lines, a long line read in few reads and a stream
// ending mid-line; many short-lived
// connections with every kind of ending, no descriptor left behind; every
// call made with an error that other code left in the thread's OpenSSL
// error queue.
// The misbehaving peers are OpenSSL itself on memory BIOs driven over a
// real socket, or raw bytes on one; certificates are made in memory, and
// the one case that needs the `openssl` command is skipped without it.
#include <cppunit/extensions/HelperMacros.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <evchan/evchan.h>
#include <evchan/tls.h>

#include "support/diagnostics.h"
#include "support/host_socket.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/posix/openssl_child.h"
#include "support/gated_tls_pair.h"
#include "support/raw_tls_peer.h"
#include "support/skip.h"
#include "support/slowdown.h"
#include "support/tls_certificates.h"
#include "support/waiting.h"


namespace {

using namespace std::chrono_literals;
using evchan::BufferedReader;
using evchan::Errc;
using evchan::EventChannel;
using evchan::TaskHandle;
using evchan::TcpSocket;
using evchan::TlsContext;
using evchan::TlsErrc;
using evchan::TlsStream;
using evchan::test::ConnectedPair;
using evchan::test::connectWhenListening;
using evchan::test::OpensslChild;
using evchan::test::describe;
using evchan::test::GatedTlsPair;
using evchan::test::GatedWriteStream;
using evchan::test::handshakeWithRawServer;
using evchan::test::readPastSessionTickets;
using evchan::test::localhostAuthority;
using evchan::test::PemIdentity;
using evchan::test::RawTlsPeer;

// Each lower socket's timeout: far beyond every wait a case expects, so
// that a wait which should have ended otherwise shows as timed_out.
constexpr evchan::Duration kPatience = 20s;

// ------------------------------------------------------------ contexts
TlsContext serverContext(const PemIdentity& identity = localhostAuthority().server) {
  TlsContext context(TlsContext::Role::server);
  context.useCertificateChainPem(identity.certificate);
  context.usePrivateKeyPem(identity.key);
  return context;
}

TlsContext clientContext() {
  TlsContext context(TlsContext::Role::client);
  context.addCaPem(localhostAuthority().ca.certificate);
  return context;
}

// ------------------------------------------------------------ evchan pairs
ConnectedPair tcpPair() {
  ConnectedPair tcp = evchan::test::connectPair();
  tcp.client.setTimeout(kPatience);
  tcp.server.setTimeout(kPatience);
  return tcp;
}

struct TlsPair {
  TlsStream client;
  TlsStream server;
};

TlsPair tlsPair(const TlsContext& clientSide = clientContext(), const TlsContext& serverSide = serverContext()) {
  ConnectedPair tcp = tcpPair();
  return {TlsStream(clientSide, std::make_unique<TcpSocket>(std::move(tcp.client))),
          TlsStream(serverSide, std::make_unique<TcpSocket>(std::move(tcp.server)))};
}

// Both handshakes at once, the server's on another thread.
void handshakeBoth(TlsPair& pair) {
  std::error_code serverError, clientError;
  std::thread server([&] { pair.server.handshake({}, serverError); });
  pair.client.handshake("localhost", clientError);
  if (clientError) pair.client.close();
  server.join();
  ASSERT_NO_ERROR(clientError);
  ASSERT_NO_ERROR(serverError);
}

TcpSocket& lowerSocket(TlsStream& stream) { return static_cast<TcpSocket&>(stream.lowerLayer()); }

// The client reads the TLS 1.3 session tickets the server sent after its
// handshake (a byte of data after them shows they are all in): nothing is
// left unread for the client, so its next read parks and its close()
// sends a FIN rather than a reset that would discard what is in flight.
void readPastSessionTickets(TlsPair& pair) {
  pair.server.writeAll("!", 1);
  char byte = 0;
  pair.client.readExactly(&byte, 1);
  CPPUNIT_ASSERT_EQUAL('!', byte);
}

// Reads until an error; returns what came, the error in `ec`.
std::string readToError(evchan::Stream& stream, std::error_code& ec) {
  std::string text;
  char buffer[16384];
  for (;;) {
    const std::size_t n = stream.readSome(buffer, sizeof buffer, ec);
    if (ec) return text;
    text.append(buffer, n);
  }
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A Stream over another that counts the reads made of it: how many times
// a BufferedReader went to the TLS stream for a line.
class ReadCountingStream : public evchan::Stream {
 public:
  explicit ReadCountingStream(evchan::Stream& inner) : inner_(inner) {}
  using evchan::Stream::readSome;
  using evchan::Stream::writeSome;
  std::size_t readSome(void* buffer, std::size_t size, std::error_code& ec) noexcept override {
    ++reads;
    return inner_.readSome(buffer, size, ec);
  }
  std::size_t writeSome(const void* buffer, std::size_t size, std::error_code& ec) noexcept override {
    return inner_.writeSome(buffer, size, ec);
  }
  void close() noexcept override { inner_.close(); }
  bool isOpen() const noexcept override { return inner_.isOpen(); }

  std::size_t reads = 0;

 private:
  evchan::Stream& inner_;
};

// ------------------------------------------------------------ a parked task
// A TLS call (a handshake, a read) in a task of a one-worker channel,
// against a peer that never answers; the test ends the wait its own way and
// reads the task's error.
struct ParkedTask {
  std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
  std::atomic<bool> started{false};
  std::error_code error;
  TaskHandle task;

  template <class Call>
  void start(Call call) {
    task = channel->spawn([this, call] {
      started = true;
      call(error);
    });
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return started.load(); }));
    // Parked: the only worker is idle once the task has suspended.
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    CPPUNIT_ASSERT_MESSAGE("the wait ended before it was ended: " + describe(error), !task.done());
  }
  void finish() { evchan::test::joinWithin(task, 10s); }
};

}  // namespace

class TlsAdversarialTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(TlsAdversarialTest);
  CPPUNIT_TEST(testWriteCutShortLeavesNoTornRecord);
  CPPUNIT_TEST(testOverLongRecordFailsAtOnce);
  CPPUNIT_TEST(testOverLongRecordInsteadOfClientHello);
  CPPUNIT_TEST(testClientHelloThenCloseIsTruncation);
  CPPUNIT_TEST(testPlainTextAnswerToClientHello);
  CPPUNIT_TEST(testDataAfterCloseNotifyIsNotDelivered);
  CPPUNIT_TEST(testSelfSignedServerRefusedNamingWhy);
  CPPUNIT_TEST(testServerNameWithNulIsRefused);
  CPPUNIT_TEST(testTls12ServerRefusedByTls13OnlyClient);
  CPPUNIT_TEST(testRenegotiationRequestFromServerIsRefused);
  CPPUNIT_TEST(testHandshakeParkedInTaskEndedByTaskCancel);
  CPPUNIT_TEST(testHandshakeParkedInTaskEndedByDeadline);
  CPPUNIT_TEST(testHandshakeParkedInTaskEndedByShutdown);
  CPPUNIT_TEST(testHandshakeParkedInTaskEndedByClose);
  CPPUNIT_TEST(testReadEndedByDeadlineThenStreamGoesOn);
  CPPUNIT_TEST(testReadParkedInTaskEndedByTaskCancel);
  CPPUNIT_TEST(testCloseEndsParkedReaderAndWriter);
  CPPUNIT_TEST(testShutdownWhileReadParkedOnAnotherThread);
  CPPUNIT_TEST(testDelimiterSplitAcrossRecords);
  CPPUNIT_TEST(testLineLongerThanItsLimit);
  CPPUNIT_TEST(testStreamEndsMidLine);
  CPPUNIT_TEST(testLongLineReadInFewReads);
  CPPUNIT_TEST(testManyShortLivedConnections);
  CPPUNIT_TEST(testKeyUpdatesDuringFullDuplexEcho);
  CPPUNIT_TEST(testKeyUpdateAnsweredWhileWriterWaitsForPeer);
  CPPUNIT_TEST(testKeyUpdateAnsweredWhileWriterTaskWaitsForPeer);
  CPPUNIT_TEST(testReaderNeverWritesForAKeyUpdate);
  CPPUNIT_TEST(testKeyUpdateAnswersPilingUpAreSentByTheReader);
  CPPUNIT_TEST(testErrorsLeftInTheThreadsQueueDoNotFailCalls);
  CPPUNIT_TEST(testEntryOfCodeZeroLeftInTheQueueKeepsTheReason);
  CPPUNIT_TEST_SUITE_END();

 public:
  // ---------------------------------------------------------- writes
  // A write the lower socket's timeout cuts off while the peer does not
  // read: OpenSSL has made the records of the whole chunk, and some went
  // out.  What follows must not be a torn record: either later writes
  // fail (the connection cannot send any more), or the peer reads the
  // stream whole.  Before the fix the next write succeeded, its record
  // landed inside the torn one, and the peer waited for the rest of it
  // until its timeout (or read a bad record).
  void testWriteCutShortLeavesNoTornRecord() {
    TlsPair pair = tlsPair();
    handshakeBoth(pair);
    readPastSessionTickets(pair);
    CPPUNIT_ASSERT(evchan::test::setHostSocketBuffers(lowerSocket(pair.client), 8192, 8192));
    CPPUNIT_ASSERT(evchan::test::setHostSocketBuffers(lowerSocket(pair.server), 8192, 8192));
    std::vector<unsigned char> first(std::size_t{1} << 20);
    evchan::test::fillPattern(first.data(), first.size(), 0);
    lowerSocket(pair.client).setTimeout(200ms);
    std::error_code ec;
    const std::size_t written = pair.client.writeAll(first.data(), first.size(), ec);
    ASSERT_ERROR(std::errc::timed_out, ec);
    lowerSocket(pair.client).setTimeout(kPatience);
    // The server reads everything; a torn record would make it wait, so
    // its wait is bounded well below the case's patience.
    lowerSocket(pair.server).setTimeout(evchan::test::generous(3s));
    std::string received;
    std::error_code readError;
    std::thread reader([&] { received = readToError(pair.server, readError); });
    const std::string second = "second message";
    std::error_code secondError;
    pair.client.writeAll(second.data(), second.size(), secondError);
    if (!secondError) pair.client.shutdown(secondError);
    if (secondError) pair.client.close();
    reader.join();
    std::printf("write cut after %zu of %zu bytes; the next write: %s; the peer read %zu bytes, then %s\n", written,
                first.size(), describe(secondError).c_str(), received.size(), describe(readError).c_str());
    CPPUNIT_ASSERT_MESSAGE("the peer waited for a torn record: " + describe(readError),
                           readError != std::errc::timed_out);
    // Whatever arrived is the first message from its start.
    const std::size_t ofFirst = std::min(received.size(), first.size());
    CPPUNIT_ASSERT(std::memcmp(received.data(), first.data(), ofFirst) == 0);
    CPPUNIT_ASSERT(ofFirst >= written);
    if (secondError) {
      // The connection could not send any more, and said so; the peer saw
      // it end without close_notify.
      ASSERT_ERROR(TlsErrc::truncated, readError);
      CPPUNIT_ASSERT(!contains(received, second));
      std::error_code again;
      pair.client.writeSome("x", 1, again);
      CPPUNIT_ASSERT(again);
    } else {
      ASSERT_ERROR(Errc::end_of_stream, readError);
      CPPUNIT_ASSERT(received.size() >= second.size());
      CPPUNIT_ASSERT_EQUAL(second, received.substr(received.size() - second.size()));
    }
  }

  // ---------------------------------------------------------- bad records
  // A record header announcing 65,535 bytes (beyond TLS's 16 KiB plus
  // expansion) fails the read as soon as the header is in, rather than
  // waiting for a body that the peer never sends.
  void testOverLongRecordFailsAtOnce() {
    TlsPair pair = tlsPair();
    handshakeBoth(pair);
    const unsigned char header[] = {0x17, 0x03, 0x03, 0xff, 0xff, 1, 2, 3};
    pair.server.lowerLayer().writeAll(header, sizeof header);
    std::error_code ec;
    char byte;
    const auto waited = evchan::test::timed([&] { pair.client.readSome(&byte, 1, ec); });
    std::printf("over-long record: %s\n", describe(ec).c_str());
    CPPUNIT_ASSERT_EQUAL(std::string("tls"), std::string(ec.category().name()));
    CPPUNIT_ASSERT(ec != TlsErrc::truncated);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::elapsedText(waited), waited < evchan::test::generous(5s));
    // The server, meanwhile, is told (an alert) and fails its read too.
    pair.server.readSome(&byte, 1, ec);
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec && ec != std::errc::timed_out);
  }

  void testOverLongRecordInsteadOfClientHello() {
    ConnectedPair tcp = tcpPair();
    TlsStream server(serverContext(), std::make_unique<TcpSocket>(std::move(tcp.server)));
    const unsigned char header[] = {0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3};
    tcp.client.writeAll(header, sizeof header);
    std::error_code ec;
    const auto waited = evchan::test::timed([&] { server.handshake({}, ec); });
    ASSERT_ERROR(TlsErrc::handshake_failed, ec);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::elapsedText(waited), waited < evchan::test::generous(5s));
    CPPUNIT_ASSERT(!server.isHandshaken());
  }

  // A client that sends its ClientHello and then half-closes: the server's
  // handshake is truncated, at once.
  void testClientHelloThenCloseIsTruncation() {
    ConnectedPair tcp = tcpPair();
    TlsStream server(serverContext(), std::make_unique<TcpSocket>(std::move(tcp.server)));
    RawTlsPeer client(tcp.client, RawTlsPeer::Role::client);
    CPPUNIT_ASSERT(client.firstFlight());
    tcp.client.shutdownWrite();
    std::error_code ec;
    server.handshake({}, ec);
    ASSERT_ERROR(TlsErrc::truncated, ec);
    CPPUNIT_ASSERT(!server.isHandshaken());
    // The server had answered the ClientHello before it learnt the end.
    unsigned char first = 0;
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, tcp.client.readSome(&first, 1));
    CPPUNIT_ASSERT_EQUAL(0x16, static_cast<int>(first));
  }

  // A plain-text server (an HTTP server on the TLS port) answering the
  // ClientHello: handshake_failed, not truncation, not a wait.
  void testPlainTextAnswerToClientHello() {
    ConnectedPair tcp = tcpPair();
    TlsStream client(clientContext(), std::make_unique<TcpSocket>(std::move(tcp.client)));
    std::thread server([&] {
      unsigned char hello[5];
      tcp.server.readExactly(hello, sizeof hello);
      const std::string answer = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
      tcp.server.writeAll(answer.data(), answer.size());
      tcp.server.shutdownWrite();
    });
    std::error_code ec;
    client.handshake("localhost", ec);
    server.join();
    std::printf("plain text answer: %s\n", describe(ec).c_str());
    ASSERT_ERROR(TlsErrc::handshake_failed, ec);
    CPPUNIT_ASSERT(!contains(ec.message(), "OpenSSL error"));
  }

  // A peer that sends close_notify and then more records: the reader gets
  // end_of_stream, then end_of_stream again, never the bytes after it.
  void testDataAfterCloseNotifyIsNotDelivered() {
    ConnectedPair tcp = tcpPair();
    TlsStream client(clientContext(), std::make_unique<TcpSocket>(std::move(tcp.client)));
    RawTlsPeer server(tcp.server, RawTlsPeer::Role::server);
    int serverResult = 0;
    std::error_code ec = handshakeWithRawServer(client, server, serverResult);
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT_EQUAL(1, serverResult);
    CPPUNIT_ASSERT(server.write("before"));
    CPPUNIT_ASSERT(SSL_shutdown(server.ssl()) >= 0);
    CPPUNIT_ASSERT(server.flush());
    SSL_set_shutdown(server.ssl(), 0);  // OpenSSL would refuse to write after it
    CPPUNIT_ASSERT(server.write("after close_notify"));
    std::string before(6, '\0');
    client.readExactly(&before[0], before.size());
    CPPUNIT_ASSERT_EQUAL(std::string("before"), before);
    char buffer[64];
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, client.readSome(buffer, sizeof buffer, ec));
    ASSERT_ERROR(Errc::end_of_stream, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, client.readSome(buffer, sizeof buffer, ec));
    ASSERT_ERROR(Errc::end_of_stream, ec);
  }

  // ---------------------------------------------------------- refusals
  // A server presenting a self-signed certificate for the right name is
  // refused, the reason naming it.
  void testSelfSignedServerRefusedNamingWhy() {
    const PemIdentity selfSigned = evchan::test::makeSelfSignedCertificate("localhost", {"localhost"});
    TlsPair pair = tlsPair(clientContext(), serverContext(selfSigned));
    std::error_code serverError, clientError;
    std::thread server([&] { pair.server.handshake({}, serverError); });
    pair.client.handshake("localhost", clientError);
    if (clientError) pair.client.close();
    server.join();
    ASSERT_ERROR(TlsErrc::verification_failed, clientError);
    CPPUNIT_ASSERT_MESSAGE(clientError.message(), contains(clientError.message(), "self") &&
                                                      contains(clientError.message(), "signed"));
    CPPUNIT_ASSERT_MESSAGE(describe(serverError), serverError);
  }

  // A name with a NUL in it is bad input: it must not be checked (and sent
  // as SNI) as the part before the NUL, a name the caller did not give.
  void testServerNameWithNulIsRefused() {
    TlsPair pair = tlsPair();
    std::error_code serverError, clientError;
    std::thread server([&] { pair.server.handshake({}, serverError); });
    pair.client.handshake(std::string("localhost\0.evil.example", 23), clientError);
    pair.client.close();
    server.join();
    CPPUNIT_ASSERT_MESSAGE("a certificate for localhost passed for a name with a NUL", clientError);
    ASSERT_ERROR(std::errc::invalid_argument, clientError);
    CPPUNIT_ASSERT(!pair.client.isHandshaken());
  }

  // A TLS 1.3-only client against a server that speaks TLS 1.2 at most:
  // protocol_version on the client.
  void testTls12ServerRefusedByTls13OnlyClient() {
    ConnectedPair tcp = tcpPair();
    TlsContext context = clientContext();
    context.setMinimumVersion(evchan::TlsVersion::tls1_3);
    TlsStream client(context, std::make_unique<TcpSocket>(std::move(tcp.client)));
    RawTlsPeer server(tcp.server, RawTlsPeer::Role::server, TLS1_2_VERSION);
    int serverResult = 0;
    const std::error_code ec = handshakeWithRawServer(client, server, serverResult);
    ASSERT_ERROR(TlsErrc::protocol_version, ec);
    CPPUNIT_ASSERT(serverResult != 1);
  }

  // `openssl s_server -tls1_2` asks evchan's client to renegotiate (its
  // "r" command): refused (docs/tls.md), the client's read ends with a TLS
  // error at once instead of renegotiating or waiting.
  void testRenegotiationRequestFromServerIsRefused() {
    const PemIdentity& identity = localhostAuthority().server;
    char directory[] = "/tmp/evchan-tls-adversarial-XXXXXX";
    CPPUNIT_ASSERT(mkdtemp(directory) != nullptr);
    const std::string certificate = std::string(directory) + "/server.pem";
    const std::string key = std::string(directory) + "/server.key";
    {
      std::FILE* file = std::fopen(certificate.c_str(), "w");
      std::fputs(identity.certificate.c_str(), file);
      std::fclose(file);
      file = std::fopen(key.c_str(), "w");
      std::fputs(identity.key.c_str(), file);
      std::fclose(file);
    }
    struct Cleanup {
      std::string directory, certificate, key;
      ~Cleanup() {
        std::remove(certificate.c_str());
        std::remove(key.c_str());
        rmdir(directory.c_str());
      }
    } cleanup{directory, certificate, key};
    // Port 0: s_server prints the one the system gave ("ACCEPT 127.0.0.1:N").
    if (!OpensslChild::installed()) EVCHAN_SKIP("the openssl command is not installed");
    OpensslChild child({"s_server", "-accept", "127.0.0.1:0", "-cert", certificate, "-key", key, "-tls1_2",
                          "-naccept", "1"});
    const std::string printed = child.lineAfter("ACCEPT 127.0.0.1:");
    const int port = std::atoi(printed.c_str());
    CPPUNIT_ASSERT_MESSAGE("s_server printed \"" + printed + "\"", port > 0);
    TcpSocket socket = connectWhenListening(port);
    socket.setTimeout(kPatience);
    TlsStream client(clientContext(), std::make_unique<TcpSocket>(std::move(socket)));
    client.handshake("localhost");
    CPPUNIT_ASSERT_EQUAL(std::string("TLSv1.2"), client.protocolVersion());
    // s_server prints what it reads: once "ping" shows, it is past the
    // handshake and reads its stdin for commands.
    client.writeAll("ping\n", 5);
    CPPUNIT_ASSERT(child.waitForOutput("ping"));
    child.write("r\n");
    std::error_code ec;
    std::string got;
    const auto waited = evchan::test::timed([&] { got = readToError(client, ec); });
    std::printf("renegotiation asked by the server: %s\n", describe(ec).c_str());
    CPPUNIT_ASSERT_EQUAL(std::string("tls"), std::string(ec.category().name()));
    CPPUNIT_ASSERT_MESSAGE(evchan::test::elapsedText(waited), waited < evchan::test::generous(10s));
    CPPUNIT_ASSERT(got.empty());
  }

  // ---------------------------------------------------------- parked tasks
  // A client handshake parked in a task (the server never answers) ended
  // by TaskHandle::cancel(): operation_canceled, the task ends, and the
  // stream can be closed.
  void testHandshakeParkedInTaskEndedByTaskCancel() {
    ConnectedPair tcp = tcpPair();
    TlsStream client(clientContext(), std::make_unique<TcpSocket>(std::move(tcp.client)));
    ParkedTask parked;
    parked.start([&](std::error_code& ec) { client.handshake("localhost", ec); });
    CPPUNIT_ASSERT(parked.task.cancel());
    parked.finish();
    ASSERT_ERROR(std::errc::operation_canceled, parked.error);
    CPPUNIT_ASSERT(!client.isHandshaken());
    // The server got the ClientHello whole.
    unsigned char header[5];
    tcp.server.readExactly(header, sizeof header);
    CPPUNIT_ASSERT_EQUAL(0x16, static_cast<int>(header[0]));
  }

  // The same ended by the task's deadline: timed_out, after the deadline
  // and long before the socket's own timeout.
  void testHandshakeParkedInTaskEndedByDeadline() {
    ConnectedPair tcp = tcpPair();
    TlsStream client(clientContext(), std::make_unique<TcpSocket>(std::move(tcp.client)));
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
    std::error_code ec;
    evchan::Duration waited{};
    TaskHandle task = channel->spawn([&] {
      // Timed from before the scope, so that the deadline is 300 ms at
      // least after the start.
      const auto start = std::chrono::steady_clock::now();
      evchan::this_task::DeadlineScope deadline(300ms);
      client.handshake("localhost", ec);
      waited = std::chrono::steady_clock::now() - start;
    });
    evchan::test::joinWithin(task, 10s);
    ASSERT_ERROR(std::errc::timed_out, ec);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::elapsedText(waited), waited >= 300ms);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::elapsedText(waited), waited < evchan::test::generous(5s));
  }

  // The same ended by the channel's shutdown: the task ends, its error says
  // so, and nothing is left open once the stream is gone.
  void testHandshakeParkedInTaskEndedByShutdown() {
    ConnectedPair tcp = tcpPair();
    auto client = std::make_unique<TlsStream>(clientContext(), std::make_unique<TcpSocket>(std::move(tcp.client)));
    ParkedTask parked;
    parked.start([&](std::error_code& ec) { client->handshake("localhost", ec); });
    parked.channel->shutdown();
    parked.finish();
    CPPUNIT_ASSERT_MESSAGE(describe(parked.error), parked.error == std::errc::operation_canceled ||
                                                       parked.error == Errc::channel_shut_down);
    client.reset();
    // The peer sees the connection end.
    std::error_code ec;
    char buffer[4096];
    while (!ec) tcp.server.readSome(buffer, sizeof buffer, ec);
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == Errc::end_of_stream || ec == std::errc::connection_reset);
  }

  // The same ended by close() of the TLS stream from the test's thread
  // (documented as allowed while others wait).
  void testHandshakeParkedInTaskEndedByClose() {
    ConnectedPair tcp = tcpPair();
    TlsStream client(clientContext(), std::make_unique<TcpSocket>(std::move(tcp.client)));
    ParkedTask parked;
    parked.start([&](std::error_code& ec) { client.handshake("localhost", ec); });
    client.close();
    parked.finish();
    CPPUNIT_ASSERT_MESSAGE(describe(parked.error),
                           parked.error == std::errc::operation_canceled || parked.error == Errc::not_open);
    CPPUNIT_ASSERT(!client.isOpen());
    std::error_code ec;
    client.handshake("localhost", ec);
    ASSERT_ERROR(Errc::not_open, ec);
  }

  // A read parked in a task ended by the task's deadline; after the
  // deadline's scope the same task reads the record the peer sends next,
  // whole: a read cut off leaves the stream as it was.
  void testReadEndedByDeadlineThenStreamGoesOn() {
    TlsPair pair = tlsPair();
    handshakeBoth(pair);
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
    std::error_code cutOff, after;
    std::atomic<bool> deadlinePassed{false};
    std::string text(5, '\0');
    TaskHandle task = channel->spawn([&] {
      {
        evchan::this_task::DeadlineScope deadline(200ms);
        char byte;
        pair.client.readSome(&byte, 1, cutOff);
      }
      deadlinePassed = true;
      pair.client.readExactly(&text[0], text.size(), after);
    });
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return deadlinePassed.load(); }));
    pair.server.writeAll("later", 5);
    evchan::test::joinWithin(task, 10s);
    ASSERT_ERROR(std::errc::timed_out, cutOff);
    ASSERT_NO_ERROR(after);
    CPPUNIT_ASSERT_EQUAL(std::string("later"), text);
  }

  // A read parked in a task ended by TaskHandle::cancel().
  void testReadParkedInTaskEndedByTaskCancel() {
    TlsPair pair = tlsPair();
    handshakeBoth(pair);
    readPastSessionTickets(pair);
    char byte;
    ParkedTask parked;
    parked.start([&](std::error_code& ec) { pair.client.readSome(&byte, 1, ec); });
    CPPUNIT_ASSERT(parked.task.cancel());
    parked.finish();
    ASSERT_ERROR(std::errc::operation_canceled, parked.error);
    // The stream goes on for a reader outside the task.
    pair.server.writeAll("?", 1);
    CPPUNIT_ASSERT_EQUAL(std::size_t{1}, pair.client.readSome(&byte, 1));
    CPPUNIT_ASSERT_EQUAL('?', byte);
  }

  // close() from another thread while one task reads (nothing comes) and
  // another writes (the peer does not read, so it waits for room): both
  // end, promptly, and later calls are not_open.
  void testCloseEndsParkedReaderAndWriter() {
    TlsPair pair = tlsPair();
    handshakeBoth(pair);
    CPPUNIT_ASSERT(evchan::test::setHostSocketBuffers(lowerSocket(pair.client), 8192, 8192));
    CPPUNIT_ASSERT(evchan::test::setHostSocketBuffers(lowerSocket(pair.server), 8192, 8192));
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    std::error_code readError, writeError;
    std::atomic<int> started{0};
    std::vector<unsigned char> big(std::size_t{4} << 20);
    TaskHandle reader = channel->spawn([&] {
      ++started;
      char byte;
      while (!readError) pair.client.readSome(&byte, 1, readError);
    });
    TaskHandle writer = channel->spawn([&] {
      ++started;
      pair.client.writeAll(big.data(), big.size(), writeError);
    });
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return started.load() == 2; }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    CPPUNIT_ASSERT(!reader.done() && !writer.done());
    const auto waited = evchan::test::timed([&] { pair.client.close(); });
    evchan::test::joinWithin(reader, 10s);
    evchan::test::joinWithin(writer, 10s);
    CPPUNIT_ASSERT_MESSAGE(evchan::test::elapsedText(waited), waited < evchan::test::generous(5s));
    CPPUNIT_ASSERT_MESSAGE(describe(readError),
                           readError == std::errc::operation_canceled || readError == Errc::not_open);
    CPPUNIT_ASSERT_MESSAGE(describe(writeError),
                           writeError == std::errc::operation_canceled || writeError == Errc::not_open);
    std::error_code ec;
    pair.client.writeSome("x", 1, ec);
    ASSERT_ERROR(Errc::not_open, ec);
  }

  // shutdown() on one thread while a read waits on another (documented:
  // the read goes on and sees the peer's close_notify).
  void testShutdownWhileReadParkedOnAnotherThread() {
    TlsPair pair = tlsPair();
    handshakeBoth(pair);
    std::error_code readError;
    std::string read;
    std::atomic<bool> done{false};
    std::thread reader([&] {
      read = readToError(pair.client, readError);
      done = true;
    });
    std::this_thread::sleep_for(20ms);
    CPPUNIT_ASSERT(!done.load());
    pair.client.shutdown();
    std::error_code serverError;
    const std::string atServer = readToError(pair.server, serverError);
    ASSERT_ERROR(Errc::end_of_stream, serverError);
    CPPUNIT_ASSERT(!done.load());
    pair.server.writeAll("bye", 3);
    pair.server.shutdown();
    reader.join();
    ASSERT_ERROR(Errc::end_of_stream, readError);
    CPPUNIT_ASSERT_EQUAL(std::string("bye"), read);
    CPPUNIT_ASSERT(atServer.empty());
  }

  // ---------------------------------------------------------- BufferedReader
  // Each writeAll() below is one TLS record and each readSome() of the
  // client returns one record at most, so the delimiters arrive in pieces.
  void testDelimiterSplitAcrossRecords() {
    TlsPair pair = tlsPair();
    handshakeBoth(pair);
    const std::vector<std::string> records = {"alpha\r", "\nbeta--BOUN", "DA", "RY--gamma\r", "\n"};
    for (const std::string& record : records) pair.server.writeAll(record.data(), record.size());
    for (std::size_t bufferSize : {std::size_t{1}, std::size_t{3}, BufferedReader::kDefaultBufferSize}) {
      if (bufferSize != 1) {
        for (const std::string& record : records) pair.server.writeAll(record.data(), record.size());
      }
      BufferedReader reader(pair.client, bufferSize);
      CPPUNIT_ASSERT_EQUAL(std::string("alpha"), reader.readLine(64));
      CPPUNIT_ASSERT_EQUAL(std::string("beta--BOUNDARY--"), reader.readUntil("--BOUNDARY--", 64));
      CPPUNIT_ASSERT_EQUAL(std::string("gamma"), reader.readLine(64));
      CPPUNIT_ASSERT(reader.buffered().empty());
    }
  }

  // A line longer than its limit, spread over many records: message_too_long
  // with the limit's worth buffered; the caller drops them and goes on to
  // the next line, whole.
  void testLineLongerThanItsLimit() {
    TlsPair pair = tlsPair();
    handshakeBoth(pair);
    const std::string longLine(40000, 'x');
    std::thread writer([&] {
      for (std::size_t at = 0; at < longLine.size(); at += 1000) pair.server.writeAll(&longLine[at], 1000);
      pair.server.writeAll("\nnext\n", 6);
    });
    BufferedReader reader(pair.client, 256);
    std::error_code ec;
    CPPUNIT_ASSERT(reader.readLine(4096, ec).empty());
    ASSERT_ERROR(Errc::message_too_long, ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{4096}, reader.buffered().size());
    std::size_t dropped = 0;
    for (;;) {
      const std::string_view seen = reader.peek(1);
      const std::size_t end = seen.find('\n');
      const std::size_t drop = end == std::string_view::npos ? seen.size() : end + 1;
      CPPUNIT_ASSERT(seen.substr(0, end == std::string_view::npos ? seen.size() : end).find_first_not_of('x') ==
                     std::string_view::npos);
      reader.consume(drop);
      dropped += drop;
      if (end != std::string_view::npos) break;
    }
    writer.join();
    CPPUNIT_ASSERT_EQUAL(longLine.size() + 1, dropped);
    CPPUNIT_ASSERT_EQUAL(std::string("next"), reader.readLine(64));
  }

  // A peer that ends mid-line: with close_notify the reader gets
  // end_of_stream, without it truncated; either way the partial line stays
  // buffered.
  void testStreamEndsMidLine() {
    for (bool closeNotify : {true, false}) {
      TlsPair pair = tlsPair();
      handshakeBoth(pair);
      pair.server.writeAll("complete\npart", 13);
      if (closeNotify) pair.server.shutdown();
      pair.server.close();
      BufferedReader reader(pair.client, 4);
      CPPUNIT_ASSERT_EQUAL(std::string("complete"), reader.readLine(64));
      std::error_code ec;
      CPPUNIT_ASSERT(reader.readLine(64, ec).empty());
      if (closeNotify) {
        ASSERT_ERROR(Errc::end_of_stream, ec);
      } else {
        ASSERT_ERROR(TlsErrc::truncated, ec);
      }
      CPPUNIT_ASSERT_EQUAL(std::string("part"), std::string(reader.buffered()));
    }
  }

  // A 256 KiB line, sixteen times the reader's first buffer, within its
  // limit: the buffer grows to hold it, and each read of the TLS stream
  // takes what a record has (16 KiB), not a byte.  Before, past its first
  // size the buffer grew by one byte a read, so every further byte cost a
  // read of the stream (a system call each on a socket).
  void testLongLineReadInFewReads() {
    TlsPair pair = tlsPair();
    handshakeBoth(pair);
    const std::string line(256 * 1024, 'y');
    std::thread writer([&] {
      pair.server.writeAll(line.data(), line.size());
      pair.server.writeAll("\n", 1);
    });
    ReadCountingStream counted(pair.client);
    BufferedReader reader(counted);
    std::error_code ec;
    const std::string got = reader.readLine(1 << 20, ec);
    writer.join();
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT(got == line);
    // 17 records at least; a few more where a read took part of one.
    CPPUNIT_ASSERT_MESSAGE(std::to_string(counted.reads) + " reads for a 256 KiB line", counted.reads <= 100);
  }

  // ---------------------------------------------------------- key update
  // One reader and one writer on the client (documented: full-duplex
  // protocols) against an echo server that asks for a key update (TLS 1.3
  // KeyUpdate, update_requested) every MiB.  The client's answer and its
  // records under the new keys must leave in order with the writer's
  // records, or the server fails to decrypt; the echo must come back whole.
  void testKeyUpdatesDuringFullDuplexEcho() {
    ConnectedPair tcp = tcpPair();
    tcp.client.setTimeout(evchan::test::generous(5s));
    tcp.server.setTimeout(evchan::test::generous(5s));
    TlsStream client(clientContext(), std::make_unique<TcpSocket>(std::move(tcp.client)));
    RawTlsPeer server(tcp.server, RawTlsPeer::Role::server);
    int serverResult = 0;
    ASSERT_NO_ERROR(handshakeWithRawServer(client, server, serverResult));
    CPPUNIT_ASSERT_EQUAL(1, serverResult);
    constexpr std::size_t kTotal = std::size_t{16} << 20;
    std::vector<unsigned char> out(kTotal), in(kTotal);
    evchan::test::fillPattern(out.data(), kTotal, 7);
    std::error_code serverError;
    std::size_t echoed = 0;
    int updates = 0;
    std::thread echo([&] {
      std::size_t nextUpdate = 0;
      while (echoed < kTotal && !serverError) {
        const std::string data = server.readSome(serverError);
        if (data.empty()) break;
        if (echoed >= nextUpdate && SSL_key_update(server.ssl(), SSL_KEY_UPDATE_REQUESTED) == 1) {
          ++updates;
          nextUpdate += std::size_t{1} << 20;
        }
        if (!server.write(data)) {
          serverError = std::make_error_code(std::errc::broken_pipe);
          break;
        }
        echoed += data.size();
      }
    });
    std::error_code writeError, readError;
    std::thread writer([&] { client.writeAll(out.data(), kTotal, writeError); });
    client.readExactly(in.data(), kTotal, readError);
    writer.join();
    echo.join();
    ASSERT_NO_ERROR(writeError);
    ASSERT_NO_ERROR(readError);
    ASSERT_NO_ERROR(serverError);
    CPPUNIT_ASSERT(in == out);
    CPPUNIT_ASSERT_MESSAGE(std::to_string(updates) + " key updates", updates >= 8);
  }

  // Both ends write a message larger than the socket buffers before they
  // read the other's, and the peer asks for key updates in its message.
  // evchan's writer waits for the peer to read, which it does only once its
  // own message is out, which needs evchan's reader to go on taking it.
  // The reader answers each key update without waiting for the writer: the
  // answer goes out once the writer's records have.  Before the fix the
  // reader queued its answer behind the writer and both ends stalled until
  // the lower stream's timeout (both calls failed with timed_out).
  void testKeyUpdateAnsweredWhileWriterWaitsForPeer() { keyUpdatesWhileBothWriteFirst(Callers::threads); }
  // The same with evchan's reader and writer in two tasks of a one-worker
  // channel: the writer's task is suspended holding the output lock.
  void testKeyUpdateAnsweredWhileWriterTaskWaitsForPeer() { keyUpdatesWhileBothWriteFirst(Callers::tasks); }

  enum class Callers { threads, tasks };
  void keyUpdatesWhileBothWriteFirst(Callers callers) {
    ConnectedPair tcp = tcpPair();
    tcp.client.setTimeout(evchan::test::generous(5s));
    tcp.server.setTimeout(evchan::test::generous(5s));
    TlsStream client(clientContext(), std::make_unique<TcpSocket>(std::move(tcp.client)));
    RawTlsPeer server(tcp.server, RawTlsPeer::Role::server);
    int serverResult = 0;
    ASSERT_NO_ERROR(handshakeWithRawServer(client, server, serverResult));
    CPPUNIT_ASSERT_EQUAL(1, serverResult);
    constexpr std::size_t kTotal = std::size_t{16} << 20;
    constexpr std::size_t kChunk = std::size_t{256} << 10;
    std::vector<unsigned char> clientOut(kTotal), clientIn(kTotal);
    std::string serverOut(kTotal, '\0'), serverIn;
    evchan::test::fillPattern(clientOut.data(), kTotal, 3);
    evchan::test::fillPattern(&serverOut[0], kTotal, 11);
    std::error_code serverError;
    int updates = 0;
    std::thread peer([&] {
      for (std::size_t sent = 0; sent < kTotal; sent += kChunk) {
        // A key update every 2 MiB from the first chunk on, each sent
        // ahead of the next chunk's records.
        if (sent % (std::size_t{2} << 20) == kChunk && SSL_key_update(server.ssl(), SSL_KEY_UPDATE_REQUESTED) == 1) {
          ++updates;
        }
        if (!server.write(serverOut.substr(sent, kChunk))) {
          serverError = std::make_error_code(std::errc::broken_pipe);
          return;
        }
      }
      while (serverIn.size() < kTotal) {
        const std::string data = server.readSome(serverError);
        if (data.empty()) return;
        serverIn += data;
      }
    });
    std::error_code writeError, readError;
    auto write = [&] { client.writeAll(clientOut.data(), kTotal, writeError); };
    auto read = [&] { client.readExactly(clientIn.data(), kTotal, readError); };
    if (callers == Callers::threads) {
      std::thread writer(write);
      read();
      writer.join();
    } else {
      std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
      TaskHandle writer = channel->spawn(write);
      TaskHandle reader = channel->spawn(read);
      evchan::test::joinWithin(writer, evchan::test::generous(60s));
      evchan::test::joinWithin(reader, evchan::test::generous(60s));
    }
    peer.join();
    ASSERT_NO_ERROR(writeError);
    ASSERT_NO_ERROR(readError);
    ASSERT_NO_ERROR(serverError);
    CPPUNIT_ASSERT(std::memcmp(clientIn.data(), serverOut.data(), kTotal) == 0);
    CPPUNIT_ASSERT_EQUAL(kTotal, serverIn.size());
    CPPUNIT_ASSERT(std::memcmp(serverIn.data(), clientOut.data(), kTotal) == 0);
    CPPUNIT_ASSERT_EQUAL(8, updates);
  }

  // A connection only read, and the peer asks for key updates while
  // evchan's side of the socket cannot take a byte (its send buffer full,
  // here a gate): the reader must go on reading, because an answer need
  // only come before our next data (RFC 8446, 4.6.3).  The answers go out
  // with the next write, ahead of that write's records, and the peer reads
  // them (its keys agree).  OpenSSL makes the answer to one update when it
  // reads the next (or at the next write), so the peer asks twice.  Before
  // the fix the reader wrote that answer itself and waited at the gate,
  // reading nothing more.
  void testReaderNeverWritesForAKeyUpdate() {
    GatedTlsPair connection(clientContext(), evchan::test::generous(10s));
    handshakeWithRawServer(connection.client, connection.server);
    readPastSessionTickets(connection.client, connection.server);
    GatedWriteStream& gate = *connection.gate;
    TlsStream& client = connection.client;
    RawTlsPeer& server = connection.server;
    gate.setGate(false);
    constexpr std::size_t kPart = std::size_t{1} << 20;
    std::string sent(3 * kPart, '\0');
    evchan::test::fillPattern(&sent[0], sent.size(), 5);
    bool peerWrote = true;
    std::thread peer([&] {
      for (std::size_t at = 0; at < sent.size() && peerWrote; at += kPart) {
        if (at != 0) peerWrote = SSL_key_update(server.ssl(), SSL_KEY_UPDATE_REQUESTED) == 1;
        peerWrote = peerWrote && server.write(sent.substr(at, kPart));
      }
    });
    std::string got(sent.size(), '\0');
    std::error_code readError;
    auto reading = std::async(std::launch::async, [&] { client.readExactly(&got[0], got.size(), readError); });
    const bool readWhileGated = reading.wait_for(evchan::test::generous(10s)) == std::future_status::ready;
    const int heldWrites = gate.held();
    gate.setGate(true);  // a stalled reader's write goes on, and the case ends
    reading.wait();
    peer.join();
    CPPUNIT_ASSERT(peerWrote);
    CPPUNIT_ASSERT_MESSAGE("the reader waited to write while the peer's data waited to be read", readWhileGated);
    CPPUNIT_ASSERT_EQUAL(0, heldWrites);
    ASSERT_NO_ERROR(readError);
    CPPUNIT_ASSERT(got == sent);
    // The answers go out now, ahead of this write's records.
    const int writesBefore = gate.writes();
    connection.clientWritesAndServerReads("after the updates");
    CPPUNIT_ASSERT(gate.writes() > writesBefore);
  }

  // A peer asking for a key update after every byte on a connection evchan
  // only reads: the answers are not kept without bound.  Past 16 KiB of
  // them the reader sends them itself, in few writes (1,000 answers of 27
  // bytes: one or two), and the peer reads what evchan writes later.
  // Before the fix the reader sent each answer on its own (1,000 writes).
  void testKeyUpdateAnswersPilingUpAreSentByTheReader() {
    GatedTlsPair connection(clientContext(), evchan::test::generous(10s));
    handshakeWithRawServer(connection.client, connection.server);
    readPastSessionTickets(connection.client, connection.server);
    GatedWriteStream& gate = *connection.gate;
    TlsStream& client = connection.client;
    RawTlsPeer& server = connection.server;
    constexpr int kUpdates = 1000;
    const int writesBefore = gate.writes();
    bool peerWrote = true;
    std::thread peer([&] {
      for (int i = 0; i < kUpdates && peerWrote; ++i) {
        peerWrote = SSL_key_update(server.ssl(), SSL_KEY_UPDATE_REQUESTED) == 1 && server.write("u");
      }
    });
    std::string got(kUpdates, '\0');
    std::error_code readError;
    client.readExactly(&got[0], got.size(), readError);
    peer.join();
    CPPUNIT_ASSERT(peerWrote);
    ASSERT_NO_ERROR(readError);
    CPPUNIT_ASSERT(got == std::string(kUpdates, 'u'));
    const int readerWrites = gate.writes() - writesBefore;
    CPPUNIT_ASSERT_MESSAGE(std::to_string(readerWrites) + " writes", readerWrites >= 1 && readerWrites <= 2);
    connection.clientWritesAndServerReads("still in step");
  }

  // ---------------------------------------------------------- error queue
  // OpenSSL tells what a call did through its thread's error queue, which
  // the program's own OpenSSL calls share: an error they left there must
  // not turn a handshake, a read that waits, a write or a shutdown into a
  // failure (SSL_get_error() would report SSL_ERROR_SSL for a read that
  // only has to wait).  Each call here runs with such an error queued.
  void testErrorsLeftInTheThreadsQueueDoNotFailCalls() {
    auto leaveAnError = [] {
      ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
      return ERR_peek_error() != 0;
    };
    TlsPair pair = tlsPair();
    std::error_code serverError;
    std::string echoed;
    bool serverQueued = true;
    std::thread server([&] {
      char buffer[5];
      serverQueued = leaveAnError();
      pair.server.handshake({}, serverError);
      if (serverError) return;
      serverQueued = serverQueued && leaveAnError();
      pair.server.readExactly(buffer, sizeof buffer, serverError);  // waits for the client
      if (serverError) return;
      serverQueued = serverQueued && leaveAnError();
      pair.server.writeAll(buffer, sizeof buffer, serverError);
    });
    std::error_code ec;
    CPPUNIT_ASSERT(leaveAnError());
    pair.client.handshake("localhost", ec);
    ASSERT_NO_ERROR(ec);
    std::this_thread::sleep_for(20ms);  // the server's read waits for data first
    CPPUNIT_ASSERT(leaveAnError());
    pair.client.writeAll("hello", 5, ec);
    ASSERT_NO_ERROR(ec);
    echoed.resize(5);
    CPPUNIT_ASSERT(leaveAnError());
    pair.client.readExactly(&echoed[0], echoed.size(), ec);
    server.join();
    ASSERT_NO_ERROR(ec);
    ASSERT_NO_ERROR(serverError);
    CPPUNIT_ASSERT(serverQueued);
    CPPUNIT_ASSERT_EQUAL(std::string("hello"), echoed);
    CPPUNIT_ASSERT(leaveAnError());
    pair.client.shutdown(ec);
    ASSERT_NO_ERROR(ec);
    char rest;
    CPPUNIT_ASSERT(leaveAnError());
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.server.readSome(&rest, 1, ec));
    ASSERT_ERROR(Errc::end_of_stream, ec);
    CPPUNIT_ASSERT_EQUAL(0UL, ERR_peek_error());
  }

  // An entry with code 0 (ERR_new() alone, which other code may leave in
  // the queue) hides from ERR_peek_error().  Left in place, a read failing
  // for a TLS reason (here a record whose MAC is wrong) came back as a
  // generic protocol_error: SSL_get_error() saw no error either and said
  // SSL_ERROR_SYSCALL.  The reason must be the one a clean queue gives.
  void testEntryOfCodeZeroLeftInTheQueueKeepsTheReason() {
    auto readForgedRecord = [](bool leaveCodeZero) {
      TlsPair pair = tlsPair();
      handshakeBoth(pair);
      readPastSessionTickets(pair);  // storing a ticket empties the queue
      // An application-data record of 32 bytes that nobody encrypted.
      const unsigned char forged[5 + 32] = {0x17, 0x03, 0x03, 0x00, 0x20, 1, 2, 3, 4, 5, 6, 7, 8};
      lowerSocket(pair.server).writeAll(forged, sizeof forged);
      if (leaveCodeZero) ERR_new();
      char byte;
      std::error_code ec;
      CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.client.readSome(&byte, 1, ec));
      return ec;
    };
    const std::error_code clean = readForgedRecord(false);
    CPPUNIT_ASSERT_MESSAGE(describe(clean), clean.category() == evchan::tls_category());
    const std::error_code afterCodeZero = readForgedRecord(true);
    CPPUNIT_ASSERT_EQUAL_MESSAGE(describe(clean) + " / " + describe(afterCodeZero), clean, afterCodeZero);
    CPPUNIT_ASSERT_EQUAL(0UL, ERR_peek_error());
  }

  // ---------------------------------------------------------- leaks
  // Many short-lived connections in tasks on a two-worker channel, ended
  // every way in turn: close_notify, a close without it, garbage instead of
  // a ClientHello, a handshake cancelled mid-way.  Each ends as it should,
  // and no descriptor is left open (the fixture counts them; ASan the
  // memory).
  void testManyShortLivedConnections() {
    const int connections = evchan::test::slowdown() > 1 ? 60 : 200;
    TlsContext client = clientContext();
    TlsContext server = serverContext();
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    std::atomic<int> asExpected{0};
    std::string firstWrong;
    std::mutex wrongLock;
    auto judge = [&](bool ok, const std::string& what) {
      if (ok) {
        ++asExpected;
        return;
      }
      std::lock_guard<std::mutex> lock(wrongLock);
      if (firstWrong.empty()) firstWrong = what;
    };
    for (int i = 0; i < connections; ++i) {
      const int ending = i % 4;
      ConnectedPair tcp = tcpPair();
      auto clientStream = std::make_shared<TlsStream>(client, std::make_unique<TcpSocket>(std::move(tcp.client)));
      auto serverStream = std::make_shared<TlsStream>(server, std::make_unique<TcpSocket>(std::move(tcp.server)));
      TaskHandle serverTask = channel->spawn([&, serverStream, ending] {
        std::error_code ec;
        if (ending == 2) {
          serverStream->lowerLayer().writeAll("garbage\r\n\r\n", 11, ec);
          if (ec) judge(false, "garbage write: " + describe(ec));
          return;
        }
        if (ending == 3) return;  // never answers: the client's handshake is cancelled
        serverStream->handshake({}, ec);
        if (ec) return judge(false, "server handshake: " + describe(ec));
        serverStream->writeAll("data", 4, ec);
        if (ending == 0) serverStream->shutdown(ec);
        serverStream->close();
      });
      TaskHandle clientTask = channel->spawn([&, clientStream, ending] {
        std::error_code ec;
        clientStream->handshake("localhost", ec);
        if (ending == 2) return judge(ec == TlsErrc::handshake_failed, "garbage: " + describe(ec));
        if (ending == 3) return judge(ec == std::errc::operation_canceled, "cancelled: " + describe(ec));
        if (ec) return judge(false, "client handshake: " + describe(ec));
        const std::string data = readToError(*clientStream, ec);
        judge(data == "data" && (ending == 0 ? ec == Errc::end_of_stream : ec == TlsErrc::truncated),
              "ending " + std::to_string(ending) + ": " + describe(ec));
      });
      if (ending == 3) {
        CPPUNIT_ASSERT(evchan::test::eventually([&] {
          clientTask.cancel();
          return clientTask.done();
        }));
      }
      evchan::test::joinWithin(clientTask, 10s);
      evchan::test::joinWithin(serverTask, 10s);
    }
    CPPUNIT_ASSERT_EQUAL_MESSAGE(firstWrong, connections, asExpected.load());
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(TlsAdversarialTest);
