// SPDX-License-Identifier: Apache-2.0
// What a TlsContext and a TlsStream hold: the OpenSSL objects, the client's
// session cache, and the locks that let one reader and one writer share an
// SSL object.
#ifndef EVCHAN_NET_TLS_STATE_H
#define EVCHAN_NET_TLS_STATE_H

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <unordered_map>
#include <vector>

#include <openssl/ssl.h>

#include <evchan/mutex.h>
#include <evchan/tls_context.h>

#include "net/tls_bio.h"

namespace evchan::detail {

/// A TlsContext's shared state: the SSL_CTX and the session cache.
struct TlsContextState {
  TlsContextState() = default;
  TlsContextState(const TlsContextState&) = delete;
  TlsContextState& operator=(const TlsContextState&) = delete;
  ~TlsContextState();

  /// Keeps a copy of `session` (serialized: no SSL_SESSION object is ever
  /// shared between connections, so no two threads touch one) for `key`,
  /// replacing an older one.
  void storeSession(const std::string& key, const SSL_SESSION* session) noexcept;
  /// A new SSL_SESSION made from the copy kept for `key` (the caller owns
  /// it), or null.  A session is offered once: TLS 1.3 tickets are
  /// single-use, and the resumed connection brings new ones.
  SSL_SESSION* takeSession(const std::string& key) noexcept;

  SSL_CTX* ctx = nullptr;
  TlsContext::Role role = TlsContext::Role::client;
  bool caGiven = false;       // the system store was replaced by given CAs
  bool verifyPeer = true;     // a client checks the server (insecureSkipVerification() clears it)
  std::atomic<bool> sessionCache{true};
  std::vector<unsigned char> alpnWire;  // a server's ALPN list, wire format

  std::mutex cacheLock;
  std::unordered_map<std::string, std::vector<unsigned char>> sessions;  // i2d_SSL_SESSION form
};

/// A TlsStream's TLS state.  `sslLock` guards the SSL object and the
/// bytes its two BIOs read and write (`received`, `made`), and is never
/// held while waiting on the lower stream;
/// `outputLock` (task-aware: held across the lower stream's writeAll)
/// keeps the records of both directions in order on the wire.  A reader
/// never waits for `outputLock`: what reading made OpenSSL write (a key
/// update, an alert) is marked in `outputPending`, and whoever holds the
/// lock sends it before letting go for good.
struct TlsSession {
  TlsSession() = default;
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;
  ~TlsSession() { SSL_free(ssl); }

  std::shared_ptr<TlsContextState> context;
  SSL* ssl = nullptr;
  BIO* in = nullptr;   // reads `received`, owned by ssl
  BIO* out = nullptr;  // writes to `made`, owned by ssl
  std::error_code setupError;
  std::string sessionKey;  // the client's session cache key

  std::mutex sslLock;
  Mutex outputLock;
  std::atomic<bool> reading{false};
  std::atomic<bool> writing{false};
  std::atomic<bool> handshaken{false};
  std::atomic<bool> closed{false};
  // Set under outputLock when the lower stream failed part-way through
  // records OpenSSL had made: they can be neither dropped nor sent again,
  // so nothing more may go out.
  std::atomic<bool> outputBroken{false};
  // Set under sslLock when a read left records in `made`, cleared under
  // sslLock when they are taken from it (to be sent under outputLock).
  std::atomic<bool> outputPending{false};
  TlsBytes readChunk;  // the reader's (or handshake's), read from the lower stream
  TlsBytes received;   // under sslLock: records read, not yet taken by OpenSSL
  TlsBytes made;       // under sslLock: records OpenSSL wrote, not yet drained
  TlsBytes outBuffer;  // under outputLock: records drained, being sent
};

/// Empties this thread's OpenSSL error queue before a call whose outcome
/// SSL_get_error() reads from it.  Only a queue that holds an entry (of
/// any code, 0 too) is cleared: ERR_clear_error() resets every slot of the
/// queue whether used or not, some 800 instructions with OpenSSL 3.0, and
/// a TLS round trip makes three or four such calls; looking costs about a
/// tenth of that.
void clearTlsErrorQueue() noexcept;

/// The error at the front of this thread's OpenSSL error queue, as a
/// tls_category() code (a refused certificate carries the check's reason
/// from `ssl`'s verify result), or a generic_category() code for a system
/// error; clears the queue.  `duringHandshake` makes an otherwise
/// unclassified error TlsErrc::handshake_failed.  `fallback` when the
/// queue is empty.
std::error_code tlsErrorFromQueue(const SSL* ssl, bool duringHandshake, std::error_code fallback);

}  // namespace evchan::detail

#endif  // EVCHAN_NET_TLS_STATE_H
