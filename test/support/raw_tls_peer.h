// SPDX-License-Identifier: Apache-2.0
// RawTlsPeer: OpenSSL on memory BIOs over a TcpSocket, a TLS peer a test
// drives record by record (tls_adversarial_test, tls_output_race_test).
#ifndef EVCHAN_TEST_SUPPORT_RAW_TLS_PEER_H
#define EVCHAN_TEST_SUPPORT_RAW_TLS_PEER_H

#include <cppunit/extensions/HelperMacros.h>

#include <memory>
#include <string>
#include <system_error>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <evchan/tcp_socket.h>

#include "support/tls_certificates.h"

namespace evchan::test {

// OpenSSL itself on two memory BIOs, its records moved over a TcpSocket by
// the test: a peer that can do what TlsStream never does (send data after
// its close_notify, speak only TLS 1.2, stop after its first flight).
class RawTlsPeer {
 public:
  enum class Role { client, server };

  RawTlsPeer(TcpSocket& socket, Role role, int maxVersion = 0) : socket_(socket) {
    ctx_.reset(SSL_CTX_new(role == Role::server ? TLS_server_method() : TLS_client_method()));
    CPPUNIT_ASSERT(ctx_);
    if (maxVersion != 0) CPPUNIT_ASSERT(SSL_CTX_set_max_proto_version(ctx_.get(), maxVersion) == 1);
    if (role == Role::server) {
      const PemIdentity& identity = localhostAuthority().server;
      std::unique_ptr<BIO, decltype(&BIO_free)> cert(
          BIO_new_mem_buf(identity.certificate.data(), static_cast<int>(identity.certificate.size())), &BIO_free);
      std::unique_ptr<BIO, decltype(&BIO_free)> key(
          BIO_new_mem_buf(identity.key.data(), static_cast<int>(identity.key.size())), &BIO_free);
      X509* x509 = PEM_read_bio_X509(cert.get(), nullptr, nullptr, nullptr);
      EVP_PKEY* pkey = PEM_read_bio_PrivateKey(key.get(), nullptr, nullptr, nullptr);
      CPPUNIT_ASSERT(x509 != nullptr && pkey != nullptr);
      CPPUNIT_ASSERT_EQUAL(1, SSL_CTX_use_certificate(ctx_.get(), x509));
      CPPUNIT_ASSERT_EQUAL(1, SSL_CTX_use_PrivateKey(ctx_.get(), pkey));
      X509_free(x509);
      EVP_PKEY_free(pkey);
    } else {
      SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_NONE, nullptr);
    }
    ssl_.reset(SSL_new(ctx_.get()));
    CPPUNIT_ASSERT(ssl_);
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in_, -1);
    BIO_set_mem_eof_return(out_, -1);
    SSL_set_bio(ssl_.get(), in_, out_);
    if (role == Role::server) {
      SSL_set_accept_state(ssl_.get());
    } else {
      SSL_set_connect_state(ssl_.get());
      SSL_set_tlsext_host_name(ssl_.get(), "localhost");
    }
  }

  SSL* ssl() { return ssl_.get(); }

  /// Sends what OpenSSL wrote to the socket; false when the socket failed.
  /// (Never throws: it runs on the test's threads.)
  bool flush() {
    char buffer[16384];
    int n;
    std::error_code ec;
    while (!ec && (n = BIO_read(out_, buffer, sizeof buffer)) > 0) {
      socket_.writeAll(buffer, static_cast<std::size_t>(n), ec);
    }
    return !ec;
  }

  /// Runs the handshake to its end; OpenSSL's result (1 on success).
  int handshake() {
    for (;;) {
      const int result = SSL_do_handshake(ssl_.get());
      if (!flush()) return -1;
      if (result == 1) return 1;
      if (SSL_get_error(ssl_.get(), result) != SSL_ERROR_WANT_READ) {
        ERR_clear_error();
        return result;
      }
      if (!feed()) return -1;
    }
  }

  /// Sends the first flight only (a client's ClientHello); false when the
  /// socket failed.
  bool firstFlight() {
    SSL_do_handshake(ssl_.get());
    ERR_clear_error();
    return flush();
  }

  /// Sends `text` in records; false when OpenSSL or the socket failed.
  bool write(const std::string& text) {
    const int n = SSL_write(ssl_.get(), text.data(), static_cast<int>(text.size()));
    ERR_clear_error();
    return n == static_cast<int>(text.size()) && flush();
  }

  /// Waits for records and returns the data they carry (empty at the
  /// socket's end or error, in `ec`).
  std::string readSome(std::error_code& ec) {
    std::string data;
    char buffer[16384];
    while (data.empty()) {
      int n;
      while ((n = SSL_read(ssl_.get(), buffer, sizeof buffer)) > 0) data.append(buffer, static_cast<std::size_t>(n));
      if (SSL_get_error(ssl_.get(), n) != SSL_ERROR_WANT_READ) {
        ERR_clear_error();
        if (data.empty()) ec = std::make_error_code(std::errc::protocol_error);
        return data;
      }
      if (!flush()) {
        ec = std::make_error_code(std::errc::broken_pipe);
        return data;
      }
      if (data.empty() && !feed(ec)) return data;
    }
    return data;
  }

 private:
  bool feed() {
    std::error_code ec;
    return feed(ec);
  }
  bool feed(std::error_code& ec) {
    char buffer[16384];
    const std::size_t n = socket_.readSome(buffer, sizeof buffer, ec);
    if (ec) return false;
    BIO_write(in_, buffer, static_cast<int>(n));
    return true;
  }

  struct CtxFree {
    void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
  };
  struct SslFree {
    void operator()(SSL* ssl) const { SSL_free(ssl); }
  };
  TcpSocket& socket_;
  std::unique_ptr<SSL_CTX, CtxFree> ctx_;
  std::unique_ptr<SSL, SslFree> ssl_;
  BIO* in_ = nullptr;   // owned by ssl_
  BIO* out_ = nullptr;  // owned by ssl_
};

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_RAW_TLS_PEER_H
