// SPDX-License-Identifier: Apache-2.0
// TLS errors: the "tls" error category and the conditions a caller tests.
#ifndef EVCHAN_TLS_ERROR_H
#define EVCHAN_TLS_ERROR_H

#include <system_error>

#include <evchan/export.h>

namespace evchan {

/// What went wrong in a TLS connection, as conditions to compare an
/// std::error_code with (`ec == TlsErrc::verification_failed`).  The codes
/// TlsStream and TlsContext report are in tls_category(); their messages
/// come from OpenSSL's error queue ("certificate verify failed: unable to
/// get local issuer certificate", "wrong version number", ...), and each
/// compares equal to the one condition below it belongs to, if any.
enum class TlsErrc {
  verification_failed = 1,  ///< a certificate was refused: untrusted, expired, wrong host name, missing
  handshake_failed,         ///< the handshake failed for another reason (not TLS, no shared cipher, an alert)
  protocol_version,         ///< no protocol version both sides accept (below the minimum)
  truncated,                ///< the peer closed the connection without close_notify: data may be lost
  not_handshaken,           ///< read, write or shutdown before a successful handshake()
  missing_server_name,      ///< a verifying client's handshake() without the name to check
};

/// The category of TLS errors ("tls").  message() is OpenSSL's reason text,
/// with the certificate check's reason for a refused certificate.
/// Thread-safe.
EVCHAN_API const std::error_category& tls_category() noexcept;

/// The condition `e` in tls_category() (found by ADL, so that
/// `ec == TlsErrc::truncated` compiles).
EVCHAN_API std::error_condition make_error_condition(TlsErrc e) noexcept;

/// An error code of the condition `e` itself, as evchan reports truncation
/// and the misuse conditions.
EVCHAN_API std::error_code makeTlsError(TlsErrc e) noexcept;

}  // namespace evchan

namespace std {
template <>
struct is_error_condition_enum<evchan::TlsErrc> : true_type {};
}  // namespace std

#endif  // EVCHAN_TLS_ERROR_H
