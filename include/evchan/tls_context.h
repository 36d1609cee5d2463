// SPDX-License-Identifier: Apache-2.0
// TlsContext: the settings TLS connections share (certificates, trust,
// versions, ALPN, the client's session cache).
#ifndef EVCHAN_TLS_CONTEXT_H
#define EVCHAN_TLS_CONTEXT_H

#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <evchan/export.h>

namespace evchan {

class TlsStream;
namespace detail {
struct TlsContextState;
}

/// The lowest TLS version a context accepts.
enum class TlsVersion {
  tls1_2,  ///< TLS 1.2 and 1.3 (the default)
  tls1_3,  ///< TLS 1.3 only
};

/// The settings of TLS connections on one side: a client's trust (the
/// system's CA store unless CAs are given), a server's certificate chain
/// and key, the lowest version (TLS 1.2 by default; 1.3 is preferred when
/// both sides have it), ALPN protocols, a server's demand for client
/// certificates, and on a client the cache of sessions for resumption.
/// Backed by an OpenSSL 3 SSL_CTX.
///
/// A TlsContext is a handle: copies share the same settings and session
/// cache; each TlsStream keeps its context alive.  Each setting comes in
/// two forms, one throwing SystemError, one taking std::error_code&
/// (OpenSSL's reason in tls_category(), or the system's for a missing
/// file).
///
/// Thread safety: configure a context before the first TlsStream uses it,
/// from one thread; from then on any number of streams on any threads may
/// use it at once (the session cache has its own lock).  Changing settings
/// while streams handshake is not allowed: OpenSSL reads them unlocked.
class EVCHAN_API TlsContext {
 public:
  /// Which end of the connection the context is for.
  enum class Role {
    client,  ///< verifies the server, sends SNI, resumes sessions
    server,  ///< presents a certificate, may verify clients
  };

  ///@{
  /// A new context.  A client trusts the system's CA store (OpenSSL's
  /// default paths; on Windows those are not the system's certificate
  /// store, so give the CAs there) until CAs are given, and verifies the
  /// server's certificate and host name; a server needs a certificate and
  /// key before its first handshake.  Fails only when OpenSSL cannot allocate;
  /// the settings of a context whose error form failed report
  /// Errc::not_open, and streams over it are closed.
  explicit TlsContext(Role role);
  TlsContext(Role role, std::error_code& ec) noexcept;
  ///@}

  /// The role given to the constructor.
  Role role() const noexcept;

  ///@{
  /// Trusts the CA certificates in the PEM file `path` (instead of the
  /// system's store, on the first call; later calls add to them).  On a
  /// server these verify client certificates.
  void loadCaFile(const std::string& path);
  void loadCaFile(const std::string& path, std::error_code& ec) noexcept;
  ///@}
  ///@{
  /// Trusts the CA certificates of a hashed directory (c_rehash /
  /// `openssl rehash` layout), as loadCaFile() does.
  void loadCaDirectory(const std::string& path);
  void loadCaDirectory(const std::string& path, std::error_code& ec) noexcept;
  ///@}
  ///@{
  /// Trusts the CA certificates in `pem` (one or more PEM blocks), as
  /// loadCaFile() does.
  void addCaPem(const std::string& pem);
  void addCaPem(const std::string& pem, std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// The certificate chain this side presents: the PEM file `path` with
  /// the leaf first, then its intermediates.
  void loadCertificateChainFile(const std::string& path);
  void loadCertificateChainFile(const std::string& path, std::error_code& ec) noexcept;
  ///@}
  ///@{
  /// The certificate chain from PEM text, leaf first.
  void useCertificateChainPem(const std::string& pem);
  void useCertificateChainPem(const std::string& pem, std::error_code& ec) noexcept;
  ///@}
  ///@{
  /// The private key of the certificate, from an unencrypted PEM file.
  /// Fails when a certificate is set and the key does not match it.
  void loadPrivateKeyFile(const std::string& path);
  void loadPrivateKeyFile(const std::string& path, std::error_code& ec) noexcept;
  ///@}
  ///@{
  /// The private key from unencrypted PEM text, checked as above.
  void usePrivateKeyPem(const std::string& pem);
  void usePrivateKeyPem(const std::string& pem, std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// The lowest protocol version accepted (TLS 1.2 by default).  A peer
  /// that offers only lower versions fails with TlsErrc::protocol_version.
  void setMinimumVersion(TlsVersion version);
  void setMinimumVersion(TlsVersion version, std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// The ALPN protocols, most preferred first ("h2", "http/1.1").  A client
  /// offers them; a server picks the first of its own list the client
  /// offers, or none (the handshake goes on without ALPN).  Each name must
  /// be 1 to 255 bytes: std::errc::invalid_argument otherwise.
  void setAlpnProtocols(const std::vector<std::string>& protocols);
  void setAlpnProtocols(const std::vector<std::string>& protocols, std::error_code& ec) noexcept;
  ///@}

  /// On a server: demands a client certificate signed by the CAs given
  /// with loadCaFile() and friends; a client without one, or with another,
  /// fails the handshake (TlsErrc::verification_failed on the server).
  /// No effect on a client.
  void requireClientCertificate(bool on = true) noexcept;

  /// On a client: turns OFF the verification of the server's certificate
  /// and host name, so that anyone in the middle can read and change the
  /// traffic.  For tests against throw-away certificates only; never in
  /// production.  No effect on a server.
  void insecureSkipVerification() noexcept;

  /// On a client: keeps the sessions servers give (keyed by the server
  /// name and peer address) and offers them again on the next handshake
  /// with the same server, which then skips the full handshake
  /// (TlsStream::sessionReused()).  On by default.
  void setSessionCacheEnabled(bool on) noexcept;

 private:
  friend class TlsStream;
  std::shared_ptr<detail::TlsContextState> state_;
};

}  // namespace evchan

#endif  // EVCHAN_TLS_CONTEXT_H
