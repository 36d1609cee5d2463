// SPDX-License-Identifier: Apache-2.0
// The "tls" error category.  A code's value is one of three kinds:
//   1..99         a TlsErrc of evchan's own (truncated, not_handshaken, ...)
//   1000 + n      a refused certificate, n being X509_verify_cert_error()
//   otherwise     an OpenSSL error (library << 23 | reason), bit 30 set
//                 when it ended a handshake
// so that message() can give OpenSSL's text long after the thread's error
// queue moved on, and the conditions can be told from the value alone.
#include <string>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <evchan/tls_error.h>

#include "net/tls_state.h"

namespace evchan {
namespace {

constexpr int kVerifyBase = 1000;
constexpr int kVerifyEnd = 1000 + 1000;
constexpr int kLibraryShift = 23;
constexpr int kReasonMask = (1 << kLibraryShift) - 1;
constexpr int kDuringHandshake = 1 << 30;

int libraryOf(int value) { return (value & ~kDuringHandshake) >> kLibraryShift; }
int reasonOf(int value) { return value & kReasonMask; }

const char* ownMessage(TlsErrc e) {
  switch (e) {
    case TlsErrc::verification_failed: return "certificate verify failed";
    case TlsErrc::handshake_failed: return "handshake failed";
    case TlsErrc::protocol_version: return "no protocol version both sides accept";
    case TlsErrc::truncated: return "peer closed the connection without close_notify (truncated)";
    case TlsErrc::not_handshaken: return "TLS handshake not done";
    case TlsErrc::missing_server_name: return "no server name to verify the certificate against";
  }
  return "unknown TLS error";
}

// The condition an OpenSSL SSL-library reason belongs to, or 0.
int conditionOfSslReason(int reason) {
  switch (reason) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
      return static_cast<int>(TlsErrc::verification_failed);
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_VERSION_TOO_LOW:
      return static_cast<int>(TlsErrc::protocol_version);
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
      return static_cast<int>(TlsErrc::truncated);
    default:
      return 0;
  }
}

class TlsCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "tls"; }

  std::string message(int value) const override {
    if (value >= 1 && value < kVerifyBase) return ownMessage(static_cast<TlsErrc>(value));
    if (value >= kVerifyBase && value < kVerifyEnd) {
      return std::string("certificate verify failed: ") + X509_verify_cert_error_string(value - kVerifyBase);
    }
    const unsigned long packed = ERR_PACK(libraryOf(value), 0, reasonOf(value));
    if (const char* reason = ERR_reason_error_string(packed)) return reason;
    return "OpenSSL error (library " + std::to_string(libraryOf(value)) + ", reason " +
           std::to_string(reasonOf(value)) + ")";
  }

  std::error_condition default_error_condition(int value) const noexcept override {
    if (value >= kVerifyBase && value < kVerifyEnd) {
      return {static_cast<int>(TlsErrc::verification_failed), *this};
    }
    if (value >= kVerifyEnd) {
      if (libraryOf(value) == ERR_LIB_SSL) {
        if (const int condition = conditionOfSslReason(reasonOf(value))) return {condition, *this};
      }
      if (value & kDuringHandshake) return {static_cast<int>(TlsErrc::handshake_failed), *this};
    }
    return {value, *this};
  }
};

}  // namespace

const std::error_category& tls_category() noexcept {
  static const TlsCategory category;
  return category;
}

std::error_condition make_error_condition(TlsErrc e) noexcept { return {static_cast<int>(e), tls_category()}; }

std::error_code makeTlsError(TlsErrc e) noexcept { return {static_cast<int>(e), tls_category()}; }

namespace detail {

void clearTlsErrorQueue() noexcept {
  // An entry's file is set (to "" at least) whatever its code: an entry
  // with code 0 (ERR_new() alone) hides from ERR_peek_error(), and would
  // make SSL_get_error() report SSL_ERROR_SYSCALL for a TLS failure.
  const char* file = nullptr;
  if (ERR_peek_error_all(&file, nullptr, nullptr, nullptr, nullptr) != 0 || file != nullptr) ERR_clear_error();
}

std::error_code tlsErrorFromQueue(const SSL* ssl, bool duringHandshake, std::error_code fallback) {
  const unsigned long error = ERR_peek_error();
  ERR_clear_error();
  if (error == 0) return fallback;
  if (ERR_SYSTEM_ERROR(error)) return {static_cast<int>(ERR_GET_REASON(error)), std::generic_category()};
  const int library = ERR_GET_LIB(error);
  const int reason = ERR_GET_REASON(error);
  if (ssl != nullptr && library == ERR_LIB_SSL && reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    const long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK && verify < kVerifyEnd - kVerifyBase) {
      return {kVerifyBase + static_cast<int>(verify), tls_category()};
    }
  }
  int value = (library << kLibraryShift) | (reason & kReasonMask);
  if (duringHandshake && library < (1 << (30 - kLibraryShift))) value |= kDuringHandshake;
  if (value < kVerifyEnd) return fallback;  // a library 0 code: cannot be told from ours
  return {value, tls_category()};
}

}  // namespace detail
}  // namespace evchan
