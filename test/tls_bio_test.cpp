// SPDX-License-Identifier: Apache-2.0
// The BIOs between OpenSSL and TlsStream's buffers (src/net/tls_bio.h), on
// their own: TlsBytes keeping its bytes in order as it grows and moves
// them, and leaving nothing behind when it is moved; what an empty input
// says; and two real OpenSSL connections (a client and a server SSL
// object) that talk only through them, the bytes carried from one side to
// the other in pieces of every size from one byte to all of them: the
// handshake, 256 KiB each way, and close_notify.
#include <cppunit/extensions/HelperMacros.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "net/tls_bio.h"
#include "support/leak_checked_fixture.h"
#include "support/tls_certificates.h"

namespace {

using evchan::detail::TlsBytes;

std::string textOf(const TlsBytes& bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.front()), bytes.size());
}

// One end of a connection: an SSL object reading `in` and writing `out`.
struct End {
  TlsBytes in;
  TlsBytes out;
  SSL* ssl = nullptr;

  explicit End(SSL_CTX* context) : ssl(SSL_new(context)) {
    CPPUNIT_ASSERT(ssl != nullptr);
    BIO* reads = evchan::detail::newTlsInputBio(in);
    BIO* writes = evchan::detail::newTlsOutputBio(out);
    CPPUNIT_ASSERT(reads != nullptr && writes != nullptr);
    SSL_set_bio(ssl, reads, writes);
  }
  ~End() { SSL_free(ssl); }
  End(const End&) = delete;
  End& operator=(const End&) = delete;
};

// Moves at most `piece` bytes of what `from` wrote to what `to` reads;
// true when it moved some.
bool carry(End& from, End& to, std::size_t piece) {
  if (from.out.empty()) return false;
  const std::size_t n = std::min(piece, from.out.size());
  CPPUNIT_ASSERT(to.in.append(from.out.front(), n));
  from.out.begin += n;
  if (from.out.empty()) from.out.clear();
  return true;
}

// An SSL call that could not go on must be waiting for input, never failing.
void expectWaitingForInput(SSL* ssl, int result) {
  const int error = SSL_get_error(ssl, result);
  CPPUNIT_ASSERT_EQUAL_MESSAGE("SSL_get_error", SSL_ERROR_WANT_READ, error);
}

SSL_CTX* serverContext() {
  const evchan::test::LocalhostAuthority& authority = evchan::test::localhostAuthority();
  SSL_CTX* context = SSL_CTX_new(TLS_server_method());
  BIO* certificate = BIO_new_mem_buf(authority.server.certificate.data(), -1);
  BIO* key = BIO_new_mem_buf(authority.server.key.data(), -1);
  X509* x509 = PEM_read_bio_X509(certificate, nullptr, nullptr, nullptr);
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(key, nullptr, nullptr, nullptr);
  CPPUNIT_ASSERT(x509 != nullptr && pkey != nullptr);
  CPPUNIT_ASSERT_EQUAL(1, SSL_CTX_use_certificate(context, x509));
  CPPUNIT_ASSERT_EQUAL(1, SSL_CTX_use_PrivateKey(context, pkey));
  X509_free(x509);
  EVP_PKEY_free(pkey);
  BIO_free(certificate);
  BIO_free(key);
  return context;
}

}  // namespace

class TlsBioTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(TlsBioTest);
  CPPUNIT_TEST(testBytesKeepTheirOrderAsTheyGrowAndMove);
  CPPUNIT_TEST(testReserveEmptyKeepsALargeEnoughBlock);
  CPPUNIT_TEST(testMoveLeavesNothingBehind);
  CPPUNIT_TEST(testEmptyInputAsksForARetryAndNeverEnds);
  CPPUNIT_TEST(testConnectionThroughTheBiosInPiecesOfEverySize);
  CPPUNIT_TEST_SUITE_END();

 public:
  // Appends that fit, that fit once the bytes move to the front of the
  // block, and that need a larger block, with bytes taken from the front
  // in between: what is left is always what was put in, in order.
  void testBytesKeepTheirOrderAsTheyGrowAndMove() {
    TlsBytes bytes;
    std::string expected;
    std::size_t next = 0;
    for (int round = 0; round < 200; ++round) {
      std::string piece;
      for (std::size_t i = 0; i < static_cast<std::size_t>(round % 37 + 1); ++i) {
        piece.push_back(static_cast<char>('a' + next++ % 26));
      }
      CPPUNIT_ASSERT(bytes.append(piece.data(), piece.size()));
      expected += piece;
      const std::size_t taken = std::min<std::size_t>(round % 29, bytes.size());
      bytes.begin += taken;
      expected.erase(0, taken);
      CPPUNIT_ASSERT_EQUAL(expected, textOf(bytes));
      CPPUNIT_ASSERT(bytes.end <= bytes.capacity);
    }
    CPPUNIT_ASSERT(bytes.append("", 0));
    CPPUNIT_ASSERT_EQUAL(expected, textOf(bytes));
  }

  // A move takes the block and leaves an empty one behind, so that
  // nothing is read or written through a block that went elsewhere.
  void testMoveLeavesNothingBehind() {
    TlsBytes bytes;
    CPPUNIT_ASSERT(bytes.append("abc", 3));
    TlsBytes taken(std::move(bytes));
    CPPUNIT_ASSERT_EQUAL(std::string("abc"), textOf(taken));
    CPPUNIT_ASSERT(bytes.empty() && bytes.capacity == 0 && bytes.data == nullptr);
    CPPUNIT_ASSERT(bytes.append("de", 2));  // usable again
    CPPUNIT_ASSERT_EQUAL(std::string("de"), textOf(bytes));
    bytes = std::move(taken);
    CPPUNIT_ASSERT_EQUAL(std::string("abc"), textOf(bytes));
    CPPUNIT_ASSERT(taken.empty() && taken.capacity == 0 && taken.data == nullptr);
  }

  void testReserveEmptyKeepsALargeEnoughBlock() {
    TlsBytes bytes;
    CPPUNIT_ASSERT(bytes.reserveEmpty(1000));
    CPPUNIT_ASSERT(bytes.capacity >= 1000 && bytes.empty());
    const unsigned char* block = bytes.data.get();
    CPPUNIT_ASSERT(bytes.append("xyz", 3));
    CPPUNIT_ASSERT(bytes.reserveEmpty(500));
    CPPUNIT_ASSERT(bytes.empty());
    CPPUNIT_ASSERT_MESSAGE("the block was kept", bytes.data.get() == block);
    CPPUNIT_ASSERT(bytes.reserveEmpty(4000));
    CPPUNIT_ASSERT(bytes.capacity >= 4000 && bytes.empty());
  }

  // As a non-blocking socket's would: "retry", not an end, not an error;
  // what is pending is what the bytes hold.
  void testEmptyInputAsksForARetryAndNeverEnds() {
    TlsBytes input;
    BIO* bio = evchan::detail::newTlsInputBio(input);
    CPPUNIT_ASSERT(bio != nullptr);
    char buffer[16];
    CPPUNIT_ASSERT(BIO_read(bio, buffer, sizeof buffer) <= 0);
    CPPUNIT_ASSERT(BIO_should_retry(bio));
    CPPUNIT_ASSERT(BIO_should_read(bio));
    CPPUNIT_ASSERT_EQUAL(0, static_cast<int>(BIO_eof(bio)));
    CPPUNIT_ASSERT(input.append("hello", 5));
    CPPUNIT_ASSERT_EQUAL(std::size_t{5}, BIO_ctrl_pending(bio));
    CPPUNIT_ASSERT_EQUAL(3, BIO_read(bio, buffer, 3));
    CPPUNIT_ASSERT(!BIO_should_retry(bio));
    CPPUNIT_ASSERT_EQUAL(std::string("hel"), std::string(buffer, 3));
    CPPUNIT_ASSERT_EQUAL(2, BIO_read(bio, buffer, sizeof buffer));
    CPPUNIT_ASSERT_EQUAL(std::string("lo"), std::string(buffer, 2));
    CPPUNIT_ASSERT(BIO_read(bio, buffer, sizeof buffer) <= 0);
    CPPUNIT_ASSERT(BIO_should_retry(bio));
    BIO_free(bio);

    TlsBytes output;
    BIO* out = evchan::detail::newTlsOutputBio(output);
    CPPUNIT_ASSERT(out != nullptr);
    CPPUNIT_ASSERT_EQUAL(6, BIO_write(out, "abcdef", 6));
    CPPUNIT_ASSERT_EQUAL(1, static_cast<int>(BIO_flush(out)));
    CPPUNIT_ASSERT_EQUAL(std::size_t{6}, BIO_ctrl_pending(out));
    CPPUNIT_ASSERT_EQUAL(std::string("abcdef"), textOf(output));
    BIO_free(out);
  }

  void testConnectionThroughTheBiosInPiecesOfEverySize() {
    SSL_CTX* serverSide = serverContext();
    SSL_CTX* clientSide = SSL_CTX_new(TLS_client_method());
    for (const std::size_t piece : {std::size_t{1}, std::size_t{7}, std::size_t{1000}, std::size_t{17000},
                                    std::size_t{1} << 30}) {
      connectAndTalk(serverSide, clientSide, piece);
    }
    SSL_CTX_free(clientSide);
    SSL_CTX_free(serverSide);
  }

 private:
  void connectAndTalk(SSL_CTX* serverSide, SSL_CTX* clientSide, std::size_t piece) {
    const std::string what = "pieces of " + std::to_string(piece) + " bytes: ";
    End client(clientSide), server(serverSide);
    SSL_set_connect_state(client.ssl);
    SSL_set_accept_state(server.ssl);
    // The handshake: each side goes as far as its input lets it, then the
    // bytes move on, a piece at a time.
    // One step of `end`'s handshake, unless it is `done`.
    auto handshakeStep = [](End& end, bool& done) {
      if (done) return;
      const int result = SSL_do_handshake(end.ssl);
      if (result == 1) {
        done = true;
      } else {
        expectWaitingForInput(end.ssl, result);
      }
    };
    bool clientDone = false, serverDone = false;
    for (int step = 0; step < 1000000 && !(clientDone && serverDone); ++step) {
      handshakeStep(client, clientDone);
      handshakeStep(server, serverDone);
      carry(client, server, piece);
      carry(server, client, piece);
    }
    CPPUNIT_ASSERT_MESSAGE(what + "handshake", clientDone && serverDone);
    // 256 KiB each way, a position-dependent pattern, read as it comes.
    std::string sent(256 * 1024, '\0');
    for (std::size_t i = 0; i < sent.size(); ++i) sent[i] = static_cast<char>(i * 131 % 251);
    for (End* writer : {&client, &server}) {
      End& reader = writer == &client ? server : client;
      CPPUNIT_ASSERT_EQUAL(static_cast<int>(sent.size()), SSL_write(writer->ssl, sent.data(), static_cast<int>(sent.size())));
      std::string received;
      std::vector<char> buffer(5000);
      for (int step = 0; step < 10000000 && received.size() < sent.size(); ++step) {
        const int n = SSL_read(reader.ssl, buffer.data(), static_cast<int>(buffer.size()));
        if (n > 0) {
          received.append(buffer.data(), static_cast<std::size_t>(n));
          continue;
        }
        expectWaitingForInput(reader.ssl, n);
        carry(*writer, reader, piece);
        carry(reader, *writer, piece);  // session tickets, nothing else
      }
      CPPUNIT_ASSERT_MESSAGE(what + "all the data, in order", received == sent);
    }
    // close_notify reaches the other side as the end.
    CPPUNIT_ASSERT(SSL_shutdown(client.ssl) >= 0);
    char byte;
    int result = 0;
    for (int step = 0; step < 1000000; ++step) {
      result = SSL_read(server.ssl, &byte, 1);
      if (result > 0 || SSL_get_error(server.ssl, result) != SSL_ERROR_WANT_READ) break;
      CPPUNIT_ASSERT_MESSAGE(what + "close_notify sent", carry(client, server, piece));
    }
    CPPUNIT_ASSERT_EQUAL_MESSAGE(what + "the end", SSL_ERROR_ZERO_RETURN, SSL_get_error(server.ssl, result));
    CPPUNIT_ASSERT_EQUAL(0UL, ERR_peek_error());
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(TlsBioTest);
