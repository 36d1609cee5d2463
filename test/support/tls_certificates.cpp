// SPDX-License-Identifier: Apache-2.0
// Certificates made with OpenSSL's X509 API (see tls_certificates.h).
#include "support/tls_certificates.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <ctime>
#include <memory>
#include <stdexcept>

namespace evchan::test {
namespace {

struct Free {
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
template <class T>
using Owned = std::unique_ptr<T, Free>;

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("making a test certificate: ") + what + " failed");
}

std::string pemOf(X509* certificate) {
  Owned<BIO> bio(BIO_new(BIO_s_mem()));
  check(bio && PEM_write_bio_X509(bio.get(), certificate) == 1, "PEM_write_bio_X509");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string pemOf(EVP_PKEY* key) {
  Owned<BIO> bio(BIO_new(BIO_s_mem()));
  check(bio && PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "PEM_write_bio_PrivateKey");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

Owned<BIO> bioOf(const std::string& pem) {
  Owned<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  check(bio != nullptr, "BIO_new_mem_buf");
  return bio;
}

void addExtension(X509* certificate, X509* issuer, int nid, const char* value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, certificate, nullptr, nullptr, 0);
  Owned<X509_EXTENSION> extension(X509V3_EXT_conf_nid(nullptr, &context, nid, value));
  check(extension && X509_add_ext(certificate, extension.get(), -1) == 1, "X509_add_ext");
}

// A certificate for `key` named `commonName`, valid over [from, until]
// seconds from now, its serial unique in this process.
Owned<X509> newCertificate(EVP_PKEY* key, const std::string& commonName, long from, long until) {
  static std::atomic<long> serial{static_cast<long>(std::time(nullptr) % 1000000) * 1000};
  Owned<X509> certificate(X509_new());
  check(certificate && X509_set_version(certificate.get(), 2) == 1, "X509_set_version");
  check(ASN1_INTEGER_set(X509_get_serialNumber(certificate.get()), ++serial) == 1, "ASN1_INTEGER_set");
  check(X509_gmtime_adj(X509_getm_notBefore(certificate.get()), from) != nullptr, "X509_gmtime_adj");
  check(X509_gmtime_adj(X509_getm_notAfter(certificate.get()), until) != nullptr, "X509_gmtime_adj");
  check(X509_set_pubkey(certificate.get(), key) == 1, "X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(certificate.get());
  check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(commonName.c_str()), -1, -1, 0) == 1,
        "X509_NAME_add_entry_by_txt");
  return certificate;
}

constexpr long kHour = 3600, kDay = 24 * kHour;

}  // namespace

PemIdentity makeCertificateAuthority(const std::string& commonName) {
  Owned<EVP_PKEY> key(EVP_EC_gen("P-256"));
  check(key != nullptr, "EVP_EC_gen");
  Owned<X509> certificate = newCertificate(key.get(), commonName, -kHour, kDay);
  check(X509_set_issuer_name(certificate.get(), X509_get_subject_name(certificate.get())) == 1,
        "X509_set_issuer_name");
  addExtension(certificate.get(), certificate.get(), NID_basic_constraints, "critical,CA:TRUE");
  addExtension(certificate.get(), certificate.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  addExtension(certificate.get(), certificate.get(), NID_subject_key_identifier, "hash");
  check(X509_sign(certificate.get(), key.get(), EVP_sha256()) > 0, "X509_sign");
  return PemIdentity{pemOf(certificate.get()), pemOf(key.get())};
}

PemIdentity makeSignedCertificate(const PemIdentity& ca, const std::string& commonName,
                                  const std::vector<std::string>& dnsNames,
                                  const std::vector<std::string>& ipAddresses, bool expired) {
  Owned<BIO> caCertificateBio = bioOf(ca.certificate);
  Owned<X509> caCertificate(PEM_read_bio_X509(caCertificateBio.get(), nullptr, nullptr, nullptr));
  Owned<BIO> caKeyBio = bioOf(ca.key);
  Owned<EVP_PKEY> caKey(PEM_read_bio_PrivateKey(caKeyBio.get(), nullptr, nullptr, nullptr));
  check(caCertificate && caKey, "reading the CA");
  Owned<EVP_PKEY> key(EVP_EC_gen("P-256"));
  check(key != nullptr, "EVP_EC_gen");
  Owned<X509> certificate =
      expired ? newCertificate(key.get(), commonName, -2 * kDay, -kDay) : newCertificate(key.get(), commonName, -kHour, kDay);
  check(X509_set_issuer_name(certificate.get(), X509_get_subject_name(caCertificate.get())) == 1,
        "X509_set_issuer_name");
  addExtension(certificate.get(), caCertificate.get(), NID_basic_constraints, "critical,CA:FALSE");
  addExtension(certificate.get(), caCertificate.get(), NID_ext_key_usage, "serverAuth,clientAuth");
  addExtension(certificate.get(), caCertificate.get(), NID_authority_key_identifier, "keyid:always");
  std::string names;
  for (const std::string& dns : dnsNames) names += (names.empty() ? "DNS:" : ",DNS:") + dns;
  for (const std::string& ip : ipAddresses) names += (names.empty() ? "IP:" : ",IP:") + ip;
  if (!names.empty()) addExtension(certificate.get(), caCertificate.get(), NID_subject_alt_name, names.c_str());
  check(X509_sign(certificate.get(), caKey.get(), EVP_sha256()) > 0, "X509_sign");
  return PemIdentity{pemOf(certificate.get()), pemOf(key.get())};
}

PemIdentity makeSelfSignedCertificate(const std::string& commonName, const std::vector<std::string>& dnsNames) {
  Owned<EVP_PKEY> key(EVP_EC_gen("P-256"));
  check(key != nullptr, "EVP_EC_gen");
  Owned<X509> certificate = newCertificate(key.get(), commonName, -kHour, kDay);
  check(X509_set_issuer_name(certificate.get(), X509_get_subject_name(certificate.get())) == 1,
        "X509_set_issuer_name");
  addExtension(certificate.get(), certificate.get(), NID_basic_constraints, "critical,CA:FALSE");
  addExtension(certificate.get(), certificate.get(), NID_ext_key_usage, "serverAuth");
  std::string names;
  for (const std::string& dns : dnsNames) names += (names.empty() ? "DNS:" : ",DNS:") + dns;
  if (!names.empty()) addExtension(certificate.get(), certificate.get(), NID_subject_alt_name, names.c_str());
  check(X509_sign(certificate.get(), key.get(), EVP_sha256()) > 0, "X509_sign");
  return PemIdentity{pemOf(certificate.get()), pemOf(key.get())};
}

const LocalhostAuthority& localhostAuthority() {
  static const LocalhostAuthority made = [] {
    LocalhostAuthority authority;
    authority.ca = makeCertificateAuthority("evchan test CA");
    authority.server = makeSignedCertificate(authority.ca, "localhost", {"localhost"}, {"127.0.0.1"});
    return authority;
  }();
  return made;
}

}  // namespace evchan::test
