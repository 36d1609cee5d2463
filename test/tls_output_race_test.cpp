// SPDX-License-Identifier: Apache-2.0
// TlsStream's reader and writer sharing the output (a reader's key-update
// answers and alerts left for, or handed to, the call holding the output
// lock), attacked through the public API: both directions busy with
// random-sized reads and writes while a raw OpenSSL peer asks for key
// updates at random points, updates its own keys and sends bursts of
// requests that pile answers up past the reader's backlog, with the
// reader and writer on threads and in tasks on one- and two-worker
// channels; a TLS 1.2 renegotiation refused while the writer cannot send;
// a failing read's alert handed to a writer whose stream is then closed;
// shutdown() racing a reader that has answers pending.  Every byte must
// arrive intact both ways and the peer must never fail to decrypt (an
// answer lost, torn or reordered would make it fail).
#include <cppunit/extensions/HelperMacros.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <evchan/evchan.h>
#include <evchan/tls.h>

#include "support/diagnostics.h"
#include "support/gated_tls_pair.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/raw_tls_peer.h"
#include "support/slowdown.h"
#include "support/tls_certificates.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::EventChannel;
using evchan::TaskHandle;
using evchan::TcpSocket;
using evchan::TlsContext;
using evchan::TlsStream;
using evchan::test::ConnectedPair;
using evchan::test::describe;
using evchan::test::GatedTlsPair;
using evchan::test::GatedWriteStream;
using evchan::test::handshakeWithRawServer;
using evchan::test::readPastSessionTickets;
using evchan::test::localhostAuthority;
using evchan::test::RawTlsPeer;

TlsContext clientContext() {
  TlsContext context(TlsContext::Role::client);
  context.addCaPem(localhostAuthority().ca.certificate);
  return context;
}

ConnectedPair timedPair() {
  ConnectedPair tcp = evchan::test::connectPair();
  tcp.client.setTimeout(evchan::test::generous(20s));
  tcp.server.setTimeout(evchan::test::generous(20s));
  return tcp;
}

// ------------------------------------------------------------ a full-duplex raw peer
// A RawTlsPeer driven from two threads at once: one reads (and checks)
// what evchan sends, one writes a pattern with key updates mixed in.  Its
// SSL object is under `sslLock`; what it writes goes to the socket under
// `sendLock`, so records leave in the order OpenSSL made them.
class DuplexPeer {
 public:
  DuplexPeer(RawTlsPeer& peer, TcpSocket& socket) : peer_(peer), socket_(socket) {}

  /// Reads `total` bytes of pattern `seed`; false (and `error`) at the
  /// first byte that differs, OpenSSL's failure, or the socket's.
  bool readPattern(std::size_t total, std::uint64_t seed) {
    std::vector<unsigned char> buffer(40000), expected(40000);
    std::size_t got = 0;
    while (got < total) {
      int n;
      bool made;
      {
        std::lock_guard<std::mutex> lock(sslLock_);
        n = SSL_read(peer_.ssl(), buffer.data(), static_cast<int>(std::min(buffer.size(), total - got)));
        if (n <= 0 && SSL_get_error(peer_.ssl(), n) != SSL_ERROR_WANT_READ) {
          return fail("peer SSL_read failed after " + std::to_string(got) + " bytes: " + openSslError());
        }
        made = BIO_ctrl_pending(SSL_get_wbio(peer_.ssl())) > 0;
      }
      // Like evchan's reader, this one must not queue behind its writer
      // (which may wait for evchan to read, while evchan's reader waits for
      // this one): the writer drains the BIO in the same locked step as it
      // writes, so anything left here the read made.
      if (made && !flush()) return fail("peer flush failed");
      if (n > 0) {
        evchan::test::fillPattern(expected.data(), static_cast<std::size_t>(n), seed + got);
        if (std::memcmp(buffer.data(), expected.data(), static_cast<std::size_t>(n)) != 0) {
          return fail("peer read a wrong byte near " + std::to_string(got));
        }
        got += static_cast<std::size_t>(n);
        continue;
      }
      if (!feed()) return false;
    }
    return true;
  }

  /// Writes `total` bytes of pattern `seed` in random pieces, asking for
  /// key updates and updating its own keys at random points, now and then
  /// in a burst of `burst` requests (whose answers pass the reader's
  /// backlog).
  bool writePattern(std::size_t total, std::uint64_t seed, std::uint32_t randomSeed, int burst) {
    std::mt19937 random(randomSeed);
    std::vector<unsigned char> piece;
    std::string out;
    int pieces = 0;
    for (std::size_t sent = 0; sent < total; ++pieces) {
      const std::size_t size = std::min<std::size_t>(total - sent, 1 + random() % 70000);
      piece.resize(size);
      evchan::test::fillPattern(piece.data(), size, seed + sent);
      const unsigned roll = random() % 64;
      std::lock_guard<std::mutex> sending(sendLock_);
      {
        std::lock_guard<std::mutex> lock(sslLock_);
        if (roll < 8) {
          if (SSL_key_update(peer_.ssl(), SSL_KEY_UPDATE_REQUESTED) == 1) ++requests;
        } else if (roll < 12) {
          if (SSL_key_update(peer_.ssl(), SSL_KEY_UPDATE_NOT_REQUESTED) == 1) ++ownUpdates;
        } else if (roll == 12 || pieces == 3) {
          for (int i = 0; i < burst; ++i) {
            if (SSL_key_update(peer_.ssl(), SSL_KEY_UPDATE_REQUESTED) != 1 || SSL_do_handshake(peer_.ssl()) != 1) {
              return fail("peer key update burst failed: " + openSslError());
            }
            ++requests;
          }
          ++bursts;
        }
        const int n = SSL_write(peer_.ssl(), piece.data(), static_cast<int>(size));
        if (n != static_cast<int>(size)) return fail("peer SSL_write failed: " + openSslError());
        drainLocked(out);
      }
      if (!sendLocked(out)) return fail("peer send failed");
      sent += size;
    }
    return true;
  }

  /// Sends `text`, asking for a key update first when `askUpdate`.
  bool write(const std::string& text, bool askUpdate) {
    std::lock_guard<std::mutex> sending(sendLock_);
    std::string out;
    {
      std::lock_guard<std::mutex> lock(sslLock_);
      if (askUpdate && SSL_key_update(peer_.ssl(), SSL_KEY_UPDATE_REQUESTED) != 1) return fail("key update");
      if (SSL_write(peer_.ssl(), text.data(), static_cast<int>(text.size())) != static_cast<int>(text.size())) {
        return fail("peer SSL_write failed: " + openSslError());
      }
      drainLocked(out);
    }
    return sendLocked(out);
  }

  /// Reads until the peer's close_notify; true when it came (and no data
  /// before it).
  bool readCloseNotify() {
    char buffer[1024];
    for (;;) {
      int n;
      {
        std::lock_guard<std::mutex> lock(sslLock_);
        n = SSL_read(peer_.ssl(), buffer, sizeof buffer);
        if (n > 0) return fail("data before close_notify");
        const int error = SSL_get_error(peer_.ssl(), n);
        if (error == SSL_ERROR_ZERO_RETURN) return true;
        if (error != SSL_ERROR_WANT_READ) return fail("waiting for close_notify: " + openSslError());
      }
      if (!feed()) return false;
    }
  }

  std::string error() {
    std::lock_guard<std::mutex> lock(errorLock_);
    return error_;
  }

  std::atomic<int> requests{0};
  std::atomic<int> ownUpdates{0};
  std::atomic<int> bursts{0};

 private:
  static std::string openSslError() {
    char text[256] = "no OpenSSL error";
    if (const unsigned long code = ERR_get_error()) ERR_error_string_n(code, text, sizeof text);
    ERR_clear_error();
    return text;
  }
  bool fail(const std::string& what) {
    std::lock_guard<std::mutex> lock(errorLock_);
    if (error_.empty()) error_ = what;
    return false;
  }
  bool feed() {
    char buffer[16384];
    std::error_code ec;
    const std::size_t n = socket_.readSome(buffer, sizeof buffer, ec);
    if (ec) return fail("peer socket read: " + describe(ec));
    std::lock_guard<std::mutex> lock(sslLock_);
    BIO_write(SSL_get_rbio(peer_.ssl()), buffer, static_cast<int>(n));
    return true;
  }
  // What OpenSSL wrote, to the socket, in order with other sends.
  bool flush() {
    std::lock_guard<std::mutex> sending(sendLock_);
    return flushLocked();
  }
  bool flushLocked() {
    std::string out;
    {
      std::lock_guard<std::mutex> lock(sslLock_);
      drainLocked(out);
    }
    return sendLocked(out);
  }
  // Takes what OpenSSL wrote; under sslLock_.
  void drainLocked(std::string& out) {
    BIO* bio = SSL_get_wbio(peer_.ssl());
    out.resize(BIO_ctrl_pending(bio));
    if (!out.empty()) BIO_read(bio, &out[0], static_cast<int>(out.size()));
  }
  // Sends drained records; under sendLock_.
  bool sendLocked(const std::string& out) {
    std::error_code ec;
    if (!out.empty()) socket_.writeAll(out.data(), out.size(), ec);
    return ec ? fail("peer socket write: " + describe(ec)) : true;
  }

  RawTlsPeer& peer_;
  TcpSocket& socket_;
  std::mutex sslLock_;
  std::mutex sendLock_;
  std::mutex errorLock_;
  std::string error_;
};

// Writes `total` bytes of pattern `seed` in random pieces.
void writeRandomly(TlsStream& stream, std::size_t total, std::uint64_t seed, std::uint32_t randomSeed,
                   std::error_code& ec) {
  std::mt19937 random(randomSeed);
  std::vector<unsigned char> piece;
  for (std::size_t sent = 0; sent < total && !ec;) {
    const std::size_t size = std::min<std::size_t>(total - sent, 1 + random() % 90000);
    piece.resize(size);
    evchan::test::fillPattern(piece.data(), size, seed + sent);
    stream.writeAll(piece.data(), size, ec);
    sent += size;
  }
}

// Reads `total` bytes in random-sized reads; false at the first byte that
// is not pattern `seed`.
bool readRandomly(TlsStream& stream, std::size_t total, std::uint64_t seed, std::uint32_t randomSeed,
                  std::error_code& ec) {
  std::mt19937 random(randomSeed);
  std::vector<unsigned char> buffer(50000), expected(50000);
  for (std::size_t got = 0; got < total;) {
    const std::size_t want = std::min<std::size_t>(total - got, 1 + random() % buffer.size());
    const std::size_t n = stream.readSome(buffer.data(), want, ec);
    if (ec) return false;
    evchan::test::fillPattern(expected.data(), n, seed + got);
    if (std::memcmp(buffer.data(), expected.data(), n) != 0) return false;
    got += n;
  }
  return true;
}

// Rounds of the stress cases: EVCHAN_TLS_RACE_ROUNDS, or 1.
int stressRounds() {
  const char* text = std::getenv("EVCHAN_TLS_RACE_ROUNDS");
  const int rounds = text != nullptr ? std::atoi(text) : 1;
  return rounds > 0 ? rounds : 1;
}

enum class Callers { threads, tasksOneWorker, tasksTwoWorkers };

}  // namespace

class TlsOutputRaceTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(TlsOutputRaceTest);
  CPPUNIT_TEST(testBothWaysWithRandomKeyUpdatesOnThreads);
  CPPUNIT_TEST(testBothWaysWithRandomKeyUpdatesInTasksOnOneWorker);
  CPPUNIT_TEST(testBothWaysWithRandomKeyUpdatesInTasksOnTwoWorkers);
  CPPUNIT_TEST(testRenegotiationRefusedWhileWriterCannotSend);
  CPPUNIT_TEST(testFailingReadsAlertHandedToWriterThenClosed);
  CPPUNIT_TEST(testShutdownRacingReaderWithAnswersPending);
  CPPUNIT_TEST(testAnswersBehindABlockedWriterAreBounded);
  CPPUNIT_TEST_SUITE_END();

 public:
  // ---------------------------------------------------------- stress
  // Both directions busy at once (8 MiB each way, random piece sizes) while
  // the raw peer asks for key updates at random points, updates its own
  // keys, and sends bursts of 700 requests (answers past the reader's 16 KiB
  // backlog, which the reader sends or hands to the writer).  Every byte
  // arrives intact both ways, the peer decrypts everything (an answer lost,
  // torn or sent out of order would make it fail), and the answers the
  // reader left last go out with the next write; shutdown() then sends
  // close_notify after them.
  void testBothWaysWithRandomKeyUpdatesOnThreads() { bothWaysWithRandomKeyUpdates(Callers::threads); }
  void testBothWaysWithRandomKeyUpdatesInTasksOnOneWorker() { bothWaysWithRandomKeyUpdates(Callers::tasksOneWorker); }
  void testBothWaysWithRandomKeyUpdatesInTasksOnTwoWorkers() {
    bothWaysWithRandomKeyUpdates(Callers::tasksTwoWorkers);
  }

  void bothWaysWithRandomKeyUpdates(Callers callers) {
    const int rounds = stressRounds();
    for (int round = 0; round < rounds; ++round) {
      const std::uint32_t seed = std::random_device{}();
      const std::string context = "seed " + std::to_string(seed) + ", round " + std::to_string(round);
      ConnectedPair tcp = timedPair();
      TlsStream client(clientContext(), std::make_unique<TcpSocket>(std::move(tcp.client)));
      RawTlsPeer raw(tcp.server, RawTlsPeer::Role::server);
      handshakeWithRawServer(client, raw);
      DuplexPeer peer(raw, tcp.server);
      constexpr std::size_t kTotal = std::size_t{8} << 20;
      bool peerRead = false, peerWrote = false, clientRead = false;
      std::error_code writeError, readError;
      std::thread peerReader([&] { peerRead = peer.readPattern(kTotal, 1000); });
      std::thread peerWriter([&] { peerWrote = peer.writePattern(kTotal, 5000, seed, 700); });
      auto write = [&] { writeRandomly(client, kTotal, 1000, seed + 1, writeError); };
      auto read = [&] { clientRead = readRandomly(client, kTotal, 5000, seed + 2, readError); };
      if (callers == Callers::threads) {
        std::thread writer(write);
        read();
        writer.join();
      } else {
        std::unique_ptr<EventChannel> channel =
            evchan::test::makeChannel(callers == Callers::tasksOneWorker ? 1 : 2);
        TaskHandle writer = channel->spawn(write);
        TaskHandle reader = channel->spawn(read);
        evchan::test::joinWithin(writer, 60s);
        evchan::test::joinWithin(reader, 60s);
      }
      peerWriter.join();
      peerReader.join();
      CPPUNIT_ASSERT_MESSAGE(context + ": " + peer.error(), peerRead && peerWrote);
      CPPUNIT_ASSERT_MESSAGE(context + ": write " + describe(writeError), !writeError);
      CPPUNIT_ASSERT_MESSAGE(context + ": read " + describe(readError), clientRead && !readError);
      CPPUNIT_ASSERT_MESSAGE(context, peer.requests.load() > 0);
      // The peer asks once more and sends a last word; evchan's reader
      // leaves that answer; the next write carries it, and the peer reads
      // that write (its keys agree).
      CPPUNIT_ASSERT_MESSAGE(peer.error(), peer.write("last", true));
      char last[4];
      std::error_code ec;
      client.readExactly(last, sizeof last, ec);
      ASSERT_NO_ERROR(ec);
      CPPUNIT_ASSERT(std::memcmp(last, "last", 4) == 0);
      std::vector<unsigned char> tail(1234);
      evchan::test::fillPattern(tail.data(), tail.size(), 77);
      std::thread tailReader([&] { peerRead = peer.readPattern(tail.size(), 77); });
      client.writeAll(tail.data(), tail.size(), ec);
      tailReader.join();
      ASSERT_NO_ERROR(ec);
      CPPUNIT_ASSERT_MESSAGE(context + ": " + peer.error(), peerRead);
      // And an answer left just before shutdown() goes out ahead of its
      // close_notify.
      CPPUNIT_ASSERT(peer.write("bye", true));
      client.readExactly(last, 3, ec);
      ASSERT_NO_ERROR(ec);
      client.shutdown(ec);
      ASSERT_NO_ERROR(ec);
      CPPUNIT_ASSERT_MESSAGE(context + ": " + peer.error(), peer.readCloseNotify());
      std::printf("%s: %d key-update requests (%d bursts), %d own updates\n", context.c_str(),
                  peer.requests.load(), peer.bursts.load(), peer.ownUpdates.load());
    }
  }

  // ---------------------------------------------------------- TLS 1.2
  // TLS 1.2: the peer asks to renegotiate while evchan's writer holds the
  // output and cannot send (the gate).  The reader refuses (a
  // no_renegotiation warning) without waiting for the writer: it reads on,
  // past the request, while the gate is closed.  Once the gate opens, the
  // peer reads the writer's data whole, and then the refusal: it arrived
  // after those records, untorn (OpenSSL makes a refused renegotiation
  // fatal, so the peer's read fails naming it).
  void testRenegotiationRefusedWhileWriterCannotSend() {
    GatedTlsPair pair(clientContext(), evchan::test::generous(20s), TLS1_2_VERSION);
    ConnectedPair& tcp = pair.tcp;
    GatedWriteStream& gate = *pair.gate;
    TlsStream& client = pair.client;
    RawTlsPeer& raw = pair.server;
    handshakeWithRawServer(client, raw);
    CPPUNIT_ASSERT_EQUAL(std::string("TLSv1.2"), client.protocolVersion());
    DuplexPeer peer(raw, tcp.server);
    gate.setGate(false);
    constexpr std::size_t kWrite = 100000;
    std::vector<unsigned char> out(kWrite);
    evchan::test::fillPattern(out.data(), kWrite, 9);
    std::error_code writeError;
    std::thread writer([&] { client.writeAll(out.data(), kWrite, writeError); });
    CPPUNIT_ASSERT(gate.waitHeld(1));  // the writer holds the output, waiting
    {
      // HelloRequest, then data.
      CPPUNIT_ASSERT_EQUAL(1, SSL_renegotiate(raw.ssl()));
      CPPUNIT_ASSERT(peer.write("after the request", false));
    }
    std::string got(17, '\0');
    std::error_code readError;
    auto reading = std::async(std::launch::async, [&] { client.readExactly(&got[0], got.size(), readError); });
    const bool readWhileGated = reading.wait_for(evchan::test::generous(10s)) == std::future_status::ready;
    const int held = gate.held();
    gate.setGate(true);
    reading.wait();
    writer.join();
    CPPUNIT_ASSERT_MESSAGE("the reader waited behind the blocked writer", readWhileGated);
    CPPUNIT_ASSERT_EQUAL(1, held);  // only the writer's write met the gate
    ASSERT_NO_ERROR(readError);
    CPPUNIT_ASSERT_EQUAL(std::string("after the request"), got);
    ASSERT_NO_ERROR(writeError);
    CPPUNIT_ASSERT_MESSAGE(peer.error(), peer.readPattern(kWrite, 9));
    CPPUNIT_ASSERT(!peer.readPattern(1, 0));
    CPPUNIT_ASSERT_MESSAGE(peer.error(), peer.error().find("no renegotiation") != std::string::npos);
  }

  // ---------------------------------------------------------- hand-off, then close
  // A read fails (the peer sends a record that does not decrypt) while the
  // writer holds the output and cannot send: the reader returns its error
  // at once, handing its alert to the writer; then the stream is closed
  // from a third thread.  The writer's send is cut off; nothing waits
  // forever: the writer fails, and every later read, write and shutdown
  // fails at once.
  void testFailingReadsAlertHandedToWriterThenClosed() {
    GatedTlsPair pair(clientContext(), evchan::test::generous(20s));
    ConnectedPair& tcp = pair.tcp;
    GatedWriteStream& gate = *pair.gate;
    TlsStream& client = pair.client;
    RawTlsPeer& raw = pair.server;
    handshakeWithRawServer(client, raw);
    gate.setGate(false);
    std::vector<unsigned char> out(std::size_t{1} << 20);
    std::error_code writeError;
    std::thread writer([&] { client.writeAll(out.data(), out.size(), writeError); });
    CPPUNIT_ASSERT(gate.waitHeld(1));
    // An application-data record of garbage: bad_record_mac.
    unsigned char record[5 + 64] = {23, 3, 3, 0, 64};
    for (std::size_t i = 5; i < sizeof record; ++i) record[i] = static_cast<unsigned char>(i * 7);
    tcp.server.writeAll(record, sizeof record);
    char byte;
    std::error_code readError;
    auto reading = std::async(std::launch::async, [&] { client.readSome(&byte, 1, readError); });
    const bool readEnded = reading.wait_for(evchan::test::generous(10s)) == std::future_status::ready;
    std::thread closer([&] { client.close(); });  // opens the gate, closes the socket
    closer.join();
    reading.wait();
    writer.join();
    CPPUNIT_ASSERT_MESSAGE("the failing read waited behind the blocked writer", readEnded);
    CPPUNIT_ASSERT_MESSAGE(describe(readError), readError && readError.category().name() == std::string("tls"));
    CPPUNIT_ASSERT(writeError);
    std::error_code ec;
    client.writeAll("x", 1, ec);
    CPPUNIT_ASSERT(ec);
    ec.clear();
    client.readSome(&byte, 1, ec);
    CPPUNIT_ASSERT(ec);
    ec.clear();
    client.shutdown(ec);
    CPPUNIT_ASSERT(ec);
  }

  // ---------------------------------------------------------- shutdown race
  // shutdown() from one thread while the reader, on another, takes data
  // with key-update requests between (answers it leaves in the BIO): the
  // answers and close_notify reach the peer whole and in order, whichever
  // comes first; 40 connections.
  void testShutdownRacingReaderWithAnswersPending() {
    const int connections = evchan::test::slowdown() > 1 ? 15 : 40;
    for (int i = 0; i < connections; ++i) {
      ConnectedPair tcp = timedPair();
      TlsStream client(clientContext(), std::make_unique<TcpSocket>(std::move(tcp.client)));
      RawTlsPeer raw(tcp.server, RawTlsPeer::Role::server);
      handshakeWithRawServer(client, raw);
      DuplexPeer peer(raw, tcp.server);
      std::error_code readError, shutdownError;
      bool peerWrote = true;
      std::thread peerWriter([&] {
        for (int k = 0; k < 20 && peerWrote; ++k) peerWrote = peer.write("0123456789", (k + i) % 3 != 0);
      });
      std::string got(200, '\0');
      std::thread reader([&] { client.readExactly(&got[0], got.size(), readError); });
      std::this_thread::yield();
      std::thread closer([&] { client.shutdown(shutdownError); });
      closer.join();
      reader.join();
      peerWriter.join();
      CPPUNIT_ASSERT_MESSAGE(peer.error(), peerWrote);
      ASSERT_NO_ERROR(readError);
      ASSERT_NO_ERROR(shutdownError);
      std::string expected;
      for (int k = 0; k < 20; ++k) expected += "0123456789";
      CPPUNIT_ASSERT_EQUAL(expected, got);
      CPPUNIT_ASSERT_MESSAGE("connection " + std::to_string(i) + ": " + peer.error(), peer.readCloseNotify());
    }
  }

  // ---------------------------------------------------------- a bound behind a blocked writer
  // The writer holds the output and cannot send (the gate: the peer does
  // not read), and the peer sends 60,000 key-update requests, then "end".
  // The reader may not wait for the writer, but neither may it keep every
  // answer: 60,000 answers are 1.6 MB held for a peer that reads nothing,
  // and a peer that goes on grows our memory without end.  Past 1 MiB of
  // answers held the read fails (no_buffer_space) instead of reading on.
  // Before the fix the reader read all of it and returned "end", the
  // answers kept in memory until the gate opened.
  void testAnswersBehindABlockedWriterAreBounded() {
    GatedTlsPair pair(clientContext(), evchan::test::generous(20s));
    GatedWriteStream& gate = *pair.gate;
    TlsStream& client = pair.client;
    RawTlsPeer& raw = pair.server;
    handshakeWithRawServer(client, raw);
    readPastSessionTickets(client, raw);
    gate.setGate(false);
    std::error_code writeError;
    std::thread writer([&] { client.writeAll("w", 1, writeError); });
    CPPUNIT_ASSERT(gate.waitHeld(1));  // the writer holds the output, waiting
    constexpr int kRequests = 60000;
    bool peerWrote = true;
    std::thread peer([&] {
      for (int i = 0; i < kRequests && peerWrote; ++i) {
        peerWrote = SSL_key_update(raw.ssl(), SSL_KEY_UPDATE_REQUESTED) == 1 && SSL_do_handshake(raw.ssl()) == 1;
        if (i % 1000 == 999) peerWrote = peerWrote && raw.flush();
      }
      peerWrote = peerWrote && raw.write("end");
    });
    std::string got(3, '\0');
    std::error_code readError;
    auto reading = std::async(std::launch::async, [&] { client.readExactly(&got[0], got.size(), readError); });
    const bool readEnded = reading.wait_for(evchan::test::generous(20s)) == std::future_status::ready;
    gate.setGate(true);
    reading.wait();
    peer.join();
    writer.join();
    client.close();
    CPPUNIT_ASSERT(peerWrote);
    CPPUNIT_ASSERT_MESSAGE("the reader waited behind the blocked writer", readEnded);
    CPPUNIT_ASSERT_MESSAGE("read \"" + got + "\", " + describe(readError) + ": every answer was kept",
                           readError == std::errc::no_buffer_space);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(TlsOutputRaceTest);
