// SPDX-License-Identifier: Apache-2.0
// TlsContext: an SSL_CTX with evchan's defaults (TLS 1.2 at least, peer
// verification on a client, no renegotiation) and the client's session
// cache.
#include <memory>
#include <new>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <evchan/error.h>
#include <evchan/system_error.h>
#include <evchan/tls_context.h>
#include <evchan/tls_error.h>

#include "net/tls_state.h"

namespace evchan {
namespace detail {

TlsContextState::~TlsContextState() { SSL_CTX_free(ctx); }

void TlsContextState::storeSession(const std::string& key, const SSL_SESSION* session) noexcept {
  // A bound on the cache: a client talking to very many servers forgets
  // them all at once rather than growing without end.
  constexpr std::size_t kMaxSessions = 1024;
  const int length = i2d_SSL_SESSION(session, nullptr);
  if (length <= 0) {
    ERR_clear_error();
    return;
  }
  try {
    std::vector<unsigned char> copy(static_cast<std::size_t>(length));
    unsigned char* at = copy.data();
    if (i2d_SSL_SESSION(session, &at) != length) {
      ERR_clear_error();
      return;
    }
    std::lock_guard<std::mutex> lock(cacheLock);
    if (sessions.size() >= kMaxSessions && sessions.find(key) == sessions.end()) sessions.clear();
    sessions[key] = std::move(copy);
  } catch (const std::bad_alloc&) {
    // Not cached: the next connection makes a full handshake.
  }
}

SSL_SESSION* TlsContextState::takeSession(const std::string& key) noexcept {
  std::vector<unsigned char> copy;
  {
    std::lock_guard<std::mutex> lock(cacheLock);
    auto found = sessions.find(key);
    if (found == sessions.end()) return nullptr;
    copy = std::move(found->second);
    sessions.erase(found);
  }
  const unsigned char* at = copy.data();
  SSL_SESSION* session = d2i_SSL_SESSION(nullptr, &at, static_cast<long>(copy.size()));
  if (session == nullptr) ERR_clear_error();
  return session;
}

}  // namespace detail

namespace {

using detail::TlsContextState;
using detail::TlsSession;

std::error_code queueError() {
  return detail::tlsErrorFromQueue(nullptr, false, std::make_error_code(std::errc::invalid_argument));
}

// OpenSSL's new-session callback: a client keeps a copy of what the server gave
// (TLS 1.3 tickets come after the handshake, while reading).
int keepNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* state = static_cast<TlsContextState*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  auto* tls = static_cast<TlsSession*>(SSL_get_app_data(ssl));
  if (state == nullptr || tls == nullptr || tls->sessionKey.empty()) return 0;
  if (!state->sessionCache.load(std::memory_order_relaxed) || !SSL_SESSION_is_resumable(session)) return 0;
  state->storeSession(tls->sessionKey, session);
  return 0;  // the cache keeps a copy; the reference stays OpenSSL's
}

// A server's ALPN choice: its own first protocol that the client offers;
// none (no ALPN in the handshake) when they share none.
int selectAlpn(SSL* ssl, const unsigned char** out, unsigned char* outLength, const unsigned char* offered,
               unsigned int offeredLength, void*) {
  auto* state = static_cast<TlsContextState*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  if (state == nullptr || state->alpnWire.empty()) return SSL_TLSEXT_ERR_NOACK;
  unsigned char* chosen = nullptr;
  const int result = SSL_select_next_proto(&chosen, outLength, state->alpnWire.data(),
                                           static_cast<unsigned int>(state->alpnWire.size()), offered,
                                           offeredLength);
  if (result != OPENSSL_NPN_NEGOTIATED) return SSL_TLSEXT_ERR_NOACK;
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

// The given CAs replace the system store on the first call.
X509_STORE* givenCaStore(TlsContextState& state) {
  if (!state.caGiven) {
    X509_STORE* fresh = X509_STORE_new();
    if (fresh == nullptr) return nullptr;
    SSL_CTX_set_cert_store(state.ctx, fresh);
    state.caGiven = true;
  }
  return SSL_CTX_get_cert_store(state.ctx);
}

std::unique_ptr<BIO, decltype(&BIO_free)> memoryBio(const std::string& text) {
  return {BIO_new_mem_buf(text.data(), static_cast<int>(text.size())), &BIO_free};
}

// Runs `configure` on the context's state, OpenSSL's error queue emptied
// first; `ec` is what it returns, or not_open when the constructor failed.
template <class Configure>
void configureContext(TlsContextState* state, std::error_code& ec, Configure configure) noexcept {
  if (state == nullptr) {
    ec = Errc::not_open;
    return;
  }
  ERR_clear_error();
  ec = configure(*state);
}

// OpenSSL's answer as an error code: its queued error unless `ok`.
std::error_code checked(bool ok) { return ok ? std::error_code() : queueError(); }

template <class Call>
void orThrow(const char* operation, Call call) {
  std::error_code ec;
  call(ec);
  throwIfError(ec, operation);
}

}  // namespace

TlsContext::TlsContext(Role role) {
  std::error_code ec;
  TlsContext context(role, ec);
  throwIfError(ec, "tls context");
  state_ = std::move(context.state_);
}

TlsContext::TlsContext(Role role, std::error_code& ec) noexcept {
  ec.clear();
  try {
    state_ = std::make_shared<TlsContextState>();
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
    return;
  }
  TlsContextState& state = *state_;
  state.role = role;
  ERR_clear_error();
  state.ctx = SSL_CTX_new(role == Role::client ? TLS_client_method() : TLS_server_method());
  if (state.ctx == nullptr) {
    ec = queueError();
    state_.reset();
    return;
  }
  SSL_CTX_set_app_data(state.ctx, &state);
  SSL_CTX_set_min_proto_version(state.ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(state.ctx, SSL_OP_NO_RENEGOTIATION);
  if (role == Role::client) {
    SSL_CTX_set_verify(state.ctx, SSL_VERIFY_PEER, nullptr);
    // No system store is not an error here: the handshake then fails
    // verification, naming the reason.
    if (SSL_CTX_set_default_verify_paths(state.ctx) != 1) ERR_clear_error();
    SSL_CTX_set_session_cache_mode(state.ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(state.ctx, keepNewSession);
  } else {
    static const unsigned char kSessionContext[] = "evchan";
    SSL_CTX_set_session_id_context(state.ctx, kSessionContext, sizeof kSessionContext - 1);
    SSL_CTX_set_alpn_select_cb(state.ctx, selectAlpn, nullptr);
  }
}

TlsContext::Role TlsContext::role() const noexcept { return state_ ? state_->role : Role::client; }

void TlsContext::loadCaFile(const std::string& path) {
  orThrow("tls load CA file", [&](std::error_code& ec) { loadCaFile(path, ec); });
}

void TlsContext::loadCaFile(const std::string& path, std::error_code& ec) noexcept {
  configureContext(state_.get(), ec, [&](TlsContextState& state) {
    return checked(givenCaStore(state) != nullptr && SSL_CTX_load_verify_file(state.ctx, path.c_str()) == 1);
  });
}

void TlsContext::loadCaDirectory(const std::string& path) {
  orThrow("tls load CA directory", [&](std::error_code& ec) { loadCaDirectory(path, ec); });
}

void TlsContext::loadCaDirectory(const std::string& path, std::error_code& ec) noexcept {
  configureContext(state_.get(), ec, [&](TlsContextState& state) {
    return checked(givenCaStore(state) != nullptr && SSL_CTX_load_verify_dir(state.ctx, path.c_str()) == 1);
  });
}

void TlsContext::addCaPem(const std::string& pem) {
  orThrow("tls add CA", [&](std::error_code& ec) { addCaPem(pem, ec); });
}

void TlsContext::addCaPem(const std::string& pem, std::error_code& ec) noexcept {
  configureContext(state_.get(), ec, [&](TlsContextState& state) {
    X509_STORE* store = givenCaStore(state);
    auto bio = memoryBio(pem);
    if (store == nullptr || !bio) return queueError();
    int added = 0;
    while (X509* certificate = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      const int ok = X509_STORE_add_cert(store, certificate);
      X509_free(certificate);
      if (ok != 1) return queueError();
      ++added;
    }
    // The loop ends on "no start line" after the last block: an error only
    // when there was no block at all.
    if (added == 0) return queueError();
    ERR_clear_error();
    return std::error_code();
  });
}

void TlsContext::loadCertificateChainFile(const std::string& path) {
  orThrow("tls load certificate chain", [&](std::error_code& ec) { loadCertificateChainFile(path, ec); });
}

void TlsContext::loadCertificateChainFile(const std::string& path, std::error_code& ec) noexcept {
  configureContext(state_.get(), ec, [&](TlsContextState& state) {
    return checked(SSL_CTX_use_certificate_chain_file(state.ctx, path.c_str()) == 1);
  });
}

void TlsContext::useCertificateChainPem(const std::string& pem) {
  orThrow("tls use certificate chain", [&](std::error_code& ec) { useCertificateChainPem(pem, ec); });
}

void TlsContext::useCertificateChainPem(const std::string& pem, std::error_code& ec) noexcept {
  configureContext(state_.get(), ec, [&](TlsContextState& state) {
    auto bio = memoryBio(pem);
    X509* leaf = bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr;
    if (leaf == nullptr) return queueError();
    const int ok = SSL_CTX_use_certificate(state.ctx, leaf);
    X509_free(leaf);
    if (ok != 1 || SSL_CTX_clear_chain_certs(state.ctx) != 1) return queueError();
    while (X509* intermediate = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      if (SSL_CTX_add0_chain_cert(state.ctx, intermediate) != 1) {
        X509_free(intermediate);
        return queueError();
      }
    }
    ERR_clear_error();  // the "no start line" that ends the loop
    return std::error_code();
  });
}

void TlsContext::loadPrivateKeyFile(const std::string& path) {
  orThrow("tls load private key", [&](std::error_code& ec) { loadPrivateKeyFile(path, ec); });
}

void TlsContext::loadPrivateKeyFile(const std::string& path, std::error_code& ec) noexcept {
  configureContext(state_.get(), ec, [&](TlsContextState& state) {
    return checked(SSL_CTX_use_PrivateKey_file(state.ctx, path.c_str(), SSL_FILETYPE_PEM) == 1);
  });
}

void TlsContext::usePrivateKeyPem(const std::string& pem) {
  orThrow("tls use private key", [&](std::error_code& ec) { usePrivateKeyPem(pem, ec); });
}

void TlsContext::usePrivateKeyPem(const std::string& pem, std::error_code& ec) noexcept {
  configureContext(state_.get(), ec, [&](TlsContextState& state) {
    auto bio = memoryBio(pem);
    EVP_PKEY* key = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr;
    if (key == nullptr) return queueError();
    const int ok = SSL_CTX_use_PrivateKey(state.ctx, key);
    EVP_PKEY_free(key);
    return checked(ok == 1);
  });
}

void TlsContext::setMinimumVersion(TlsVersion version) {
  orThrow("tls minimum version", [&](std::error_code& ec) { setMinimumVersion(version, ec); });
}

void TlsContext::setMinimumVersion(TlsVersion version, std::error_code& ec) noexcept {
  configureContext(state_.get(), ec, [&](TlsContextState& state) {
    const int wire = version == TlsVersion::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
    return checked(SSL_CTX_set_min_proto_version(state.ctx, wire) == 1);
  });
}

void TlsContext::setAlpnProtocols(const std::vector<std::string>& protocols) {
  orThrow("tls ALPN protocols", [&](std::error_code& ec) { setAlpnProtocols(protocols, ec); });
}

void TlsContext::setAlpnProtocols(const std::vector<std::string>& protocols, std::error_code& ec) noexcept {
  configureContext(state_.get(), ec, [&](TlsContextState& state) {
    std::vector<unsigned char> wire;
    try {
      for (const std::string& name : protocols) {
        if (name.empty() || name.size() > 255) return std::make_error_code(std::errc::invalid_argument);
        wire.push_back(static_cast<unsigned char>(name.size()));
        wire.insert(wire.end(), name.begin(), name.end());
      }
    } catch (const std::bad_alloc&) {
      return std::make_error_code(std::errc::not_enough_memory);
    }
    if (state.role == Role::server) {
      state.alpnWire = std::move(wire);
      return std::error_code();
    }
    // SSL_CTX_set_alpn_protos returns 0 on success.
    return checked(SSL_CTX_set_alpn_protos(state.ctx, wire.data(), static_cast<unsigned int>(wire.size())) == 0);
  });
}

void TlsContext::requireClientCertificate(bool on) noexcept {
  if (!state_) return;
  if (state_->role != Role::server) return;
  SSL_CTX_set_verify(state_->ctx, on ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_NONE, nullptr);
}

void TlsContext::insecureSkipVerification() noexcept {
  if (!state_) return;
  if (state_->role != Role::client) return;
  state_->verifyPeer = false;
  SSL_CTX_set_verify(state_->ctx, SSL_VERIFY_NONE, nullptr);
}

void TlsContext::setSessionCacheEnabled(bool on) noexcept {
  if (state_) state_->sessionCache.store(on, std::memory_order_relaxed);
}

}  // namespace evchan
