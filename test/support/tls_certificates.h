// SPDX-License-Identifier: Apache-2.0
// Certificates made in memory with OpenSSL's API, for TLS suites that run
// where there is no openssl command (Windows): a CA and leaf certificates
// it signs, as PEM text for TlsContext's *Pem() calls.
#ifndef EVCHAN_TEST_SUPPORT_TLS_CERTIFICATES_H
#define EVCHAN_TEST_SUPPORT_TLS_CERTIFICATES_H

#include <string>
#include <vector>

namespace evchan::test {

/// A certificate and its private key, both PEM.
struct PemIdentity {
  std::string certificate;
  std::string key;
};

/// A self-signed CA (P-256, valid from an hour ago for a day) named
/// `commonName`.
PemIdentity makeCertificateAuthority(const std::string& commonName);

/// A leaf certificate for `commonName` (P-256), signed by `ca`, with
/// `dnsNames` and `ipAddresses` as its subject alternative names, for
/// servers and clients alike; valid from an hour ago for a day, or, when
/// `expired`, from two days ago until yesterday.
PemIdentity makeSignedCertificate(const PemIdentity& ca, const std::string& commonName,
                                  const std::vector<std::string>& dnsNames,
                                  const std::vector<std::string>& ipAddresses, bool expired = false);

/// A leaf certificate for `commonName` (P-256) signed by its own key, with
/// `dnsNames` as its subject alternative names: what a server that nobody
/// vouches for presents.  Valid from an hour ago for a day.
PemIdentity makeSelfSignedCertificate(const std::string& commonName, const std::vector<std::string>& dnsNames);

/// A CA and a server certificate it signed for "localhost" and 127.0.0.1.
struct LocalhostAuthority {
  PemIdentity ca;
  PemIdentity server;
};

/// The process's one LocalhostAuthority, made at the first call (making
/// keys takes a few milliseconds).
const LocalhostAuthority& localhostAuthority();

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_TLS_CERTIFICATES_H
