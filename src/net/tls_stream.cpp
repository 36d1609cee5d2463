// SPDX-License-Identifier: Apache-2.0
// TlsStream: OpenSSL on two memory BIOs, the lower stream moving the bytes.
// OpenSSL never does IO here, so it never blocks: when it wants input the
// caller reads the lower stream (suspending a task, blocking a thread, as
// that stream does) and feeds the BIO; what it wrote is flushed with the
// lower stream's writeAll().
#include <algorithm>
#include <climits>
#include <memory>
#include <mutex>
#include <new>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <evchan/error.h>
#include <evchan/system_error.h>
#include <evchan/tcp_socket.h>
#include <evchan/tls_stream.h>

#include "net/closed_under_mark.h"
#include "net/pieces.h"
#include "net/tls_state.h"

namespace evchan {
namespace {

using detail::TlsSession;

// The lower stream is read this much at a time: two full TLS records.
constexpr std::size_t kReadChunk = 34 * 1024;
// One writeSome() encrypts at most this much (the records are held in
// memory until the lower stream took them).
constexpr std::size_t kMaxWrite = 256 * 1024;
// A reader leaves its answers (to key updates) for the next write up to
// this much, then sends them itself.
constexpr std::size_t kAnswerBacklog = 16 * 1024;
// While a write holds the output and cannot send, a reader keeps at most
// this much of its answers; past it the read fails (no_buffer_space).
constexpr std::size_t kAnswerLimit = 1024 * 1024;

// One side's claim on the stream (reading or writing): a second one at the
// same time fails with socket_busy instead of corrupting the SSL object.
class Claim {
 public:
  explicit Claim(std::atomic<bool>& flag) noexcept : flag_(flag), held_(!flag.exchange(true, std::memory_order_acquire)) {}
  ~Claim() {
    if (held_) flag_.store(false, std::memory_order_release);
  }
  Claim(const Claim&) = delete;
  Claim& operator=(const Claim&) = delete;
  bool held() const noexcept { return held_; }

 private:
  std::atomic<bool>& flag_;
  bool held_;
};

// The checks a read or a write makes before it claims its direction, in
// the order the header documents their errors: an open stream, a buffer
// (unless there is nothing to move), a finished handshake.  `mark` is the
// lower stream's, taken when the call began.
std::error_code transferError(bool open, Stream::CancelMark mark, const TlsSession* session, const void* buffer,
                              std::size_t size) noexcept {
  if (!open) return detail::closedUnderMark(mark);
  if (buffer == nullptr && size != 0) return Errc::null_buffer;
  if (size != 0 && !session->handshaken.load(std::memory_order_acquire)) {
    return makeTlsError(TlsErrc::not_handshaken);
  }
  return {};
}

// What one TlsStream call does on the lower stream: its reads and writes,
// each step under the mark the call began with, so that a cancel() of the
// lower stream after that reaches every step.  The steps are Stream's
// protected helpers, which a TlsStream member hands over.
struct LowerCalls {
  using ReadSince = std::size_t (*)(Stream&, Stream::CancelMark, void*, std::size_t, std::error_code&) noexcept;
  using WriteAllSince = std::size_t (*)(Stream&, Stream::CancelMark, const void*, std::size_t,
                                        std::error_code&) noexcept;
  Stream& stream;
  Stream::CancelMark readMark;
  Stream::CancelMark writeMark;
  ReadSince readSince;
  WriteAllSince writeAllSince;

  std::size_t readSome(void* buffer, std::size_t size, std::error_code& ec) const noexcept {
    return readSince(stream, readMark, buffer, size, ec);
  }
  void writeAll(const void* buffer, std::size_t size, std::error_code& ec) const noexcept {
    writeAllSince(stream, writeMark, buffer, size, ec);
  }
};

// Reads what the lower stream has and gives it to OpenSSL.  The lower
// stream ending here, where TLS wanted more, is truncation.  OpenSSL has
// usually taken everything before it asks for more: then the block read
// into becomes what it reads, without a copy.
bool feed(TlsSession& s, const LowerCalls& lower, std::error_code& ec) noexcept {
  if (!s.readChunk.reserveEmpty(kReadChunk)) {
    ec = std::make_error_code(std::errc::not_enough_memory);
    return false;
  }
  const std::size_t n = lower.readSome(s.readChunk.data.get(), kReadChunk, ec);
  if (ec) {
    if (ec == Errc::end_of_stream) ec = makeTlsError(TlsErrc::truncated);
    return false;
  }
  std::lock_guard<std::mutex> lock(s.sslLock);
  if (s.received.empty()) {
    s.readChunk.end = n;
    std::swap(s.received, s.readChunk);
  } else if (!s.received.append(s.readChunk.data.get(), n)) {
    ec = std::make_error_code(std::errc::not_enough_memory);
    return false;
  }
  return true;
}

// Takes the records OpenSSL wrote, to be sent; under outputLock, and
// sslLock held by the caller.  The blocks change hands, nothing is copied.
void drainLocked(TlsSession& s) noexcept {
  s.outBuffer.clear();
  std::swap(s.outBuffer, s.made);
  s.outputPending.store(false);
}

// What every output fails with once a send was cut off.
std::error_code brokenOutput() noexcept { return std::make_error_code(std::errc::broken_pipe); }

// Writes the drained records to the lower stream; under outputLock.  The
// records are numbered and were made once: when the lower stream ends the
// write part-way (its timeout, cancel(), an error), the rest can neither
// be dropped (the next record would land inside a torn one, and the peer
// would wait for the rest of it, or fail on a bad record) nor be made
// again, so the connection sends nothing more.
void sendDrained(TlsSession& s, const LowerCalls& lower, std::error_code& ec) noexcept {
  if (s.outBuffer.empty()) return;
  lower.writeAll(s.outBuffer.front(), s.outBuffer.size(), ec);
  if (ec) s.outputBroken.store(true, std::memory_order_release);
}

// Runs `body` holding outputLock (a task waiting for it is suspended),
// unless an earlier send was cut off.
template <class Body>
void withOutputLock(TlsSession& s, std::error_code& ec, Body body) noexcept {
  try {
    std::lock_guard<Mutex> lock(s.outputLock);
    if (s.outputBroken.load(std::memory_order_acquire)) {
      ec = brokenOutput();
      return;
    }
    body();
  } catch (const SystemError& error) {
    ec = error.code();  // the channel shut down while waiting for the lock
  } catch (...) {
    ec = std::make_error_code(std::errc::operation_canceled);
  }
}

// Drains the output BIO and sends it; under outputLock.
void drainAndSend(TlsSession& s, const LowerCalls& lower, std::error_code& ec) noexcept {
  {
    std::lock_guard<std::mutex> lock(s.sslLock);
    drainLocked(s);
  }
  sendDrained(s, lower, ec);
}

// Sends what OpenSSL has written (the handshake's messages and alerts),
// in order with the writer's records.
void flushPending(TlsSession& s, const LowerCalls& lower, std::error_code& ec) noexcept {
  withOutputLock(s, ec, [&] { drainAndSend(s, lower, ec); });
}

// Sends the records reads left in the output BIO (outputPending), for as
// long as there are some and outputLock is free.  A reader that must send
// calls it instead of waiting for the lock: the writer holding it may wait
// for a peer that itself waits for this reader to take its data (both
// sides writing a large message before reading), and a reader queued
// behind that writer would hold up both.  Every holder of the lock calls
// it after unlocking, which closes the gap: a reader that found the lock
// taken had set outputPending before it tried (Mutex's internal lock
// orders the two), so the holder sees it, or a drain since then has taken
// the records.
void sendLeftOutput(TlsSession& s, const LowerCalls& lower, std::error_code& ec) noexcept {
  while (s.outputPending.load() && s.outputLock.try_lock()) {
    std::lock_guard<Mutex> lock(s.outputLock, std::adopt_lock);
    if (s.outputBroken.load(std::memory_order_acquire)) {
      ec = brokenOutput();
      return;
    }
    drainAndSend(s, lower, ec);
    if (ec) return;
  }
}

bool isIpAddress(const std::string& name) {
  ASN1_OCTET_STRING* ip = a2i_IPADDRESS(name.c_str());
  if (ip == nullptr) {
    detail::clearTlsErrorQueue();
    return false;
  }
  ASN1_OCTET_STRING_free(ip);
  return true;
}

// A client's SNI, name check and offered session, before its first flight.
std::error_code prepareClient(TlsSession& s, const std::string& serverName, const std::string& peer) {
  // OpenSSL takes C strings: a NUL would make it check, and send, only the
  // name before it, which is not the one the caller gave.
  if (serverName.find('\0') != std::string::npos) return std::make_error_code(std::errc::invalid_argument);
  const bool ip = !serverName.empty() && isIpAddress(serverName);
  if (s.context->verifyPeer) {
    if (serverName.empty()) return makeTlsError(TlsErrc::missing_server_name);
    X509_VERIFY_PARAM* param = SSL_get0_param(s.ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, serverName.c_str())
                      : SSL_set1_host(s.ssl, serverName.c_str());
    if (ok != 1) return detail::tlsErrorFromQueue(nullptr, false, std::make_error_code(std::errc::invalid_argument));
  }
  // SNI carries host names only, never an address (RFC 6066).
  if (!serverName.empty() && !ip && SSL_set_tlsext_host_name(s.ssl, serverName.c_str()) != 1) {
    return detail::tlsErrorFromQueue(nullptr, false, std::make_error_code(std::errc::invalid_argument));
  }
  if (s.context->sessionCache.load(std::memory_order_relaxed)) {
    s.sessionKey = serverName + "@" + peer;
    if (SSL_SESSION* cached = s.context->takeSession(s.sessionKey)) {
      SSL_set_session(s.ssl, cached);
      SSL_SESSION_free(cached);
    }
  }
  return {};
}

}  // namespace

TlsStream::TlsStream() noexcept = default;

TlsStream::TlsStream(const TlsContext& context, std::unique_ptr<Stream> lower) noexcept : lower_(std::move(lower)) {
  if (!lower_ || !context.state_) return;
  // Each record goes out whole, in one writeAll(): Nagle's algorithm only
  // holds a small one back until what went before is acknowledged.  After
  // a TLS 1.3 handshake that is the server's session tickets, which a
  // client acknowledges only when it sends or its delayed-ACK timer fires:
  // a server speaking first waited 40 ms (Linux) for its first message.
  if (auto* tcp = dynamic_cast<TcpSocket*>(lower_.get())) {
    std::error_code ignored;  // a socket closed already fails every call later
    tcp->setNoDelay(true, ignored);
  }
  try {
    session_ = std::make_unique<TlsSession>();
  } catch (const std::bad_alloc&) {
    return;
  }
  TlsSession& s = *session_;
  s.context = context.state_;
  detail::clearTlsErrorQueue();
  s.ssl = SSL_new(s.context->ctx);
  s.in = detail::newTlsInputBio(s.received);
  s.out = detail::newTlsOutputBio(s.made);
  if (s.ssl == nullptr || s.in == nullptr || s.out == nullptr) {
    s.setupError = detail::tlsErrorFromQueue(nullptr, false, std::make_error_code(std::errc::not_enough_memory));
    BIO_free(s.in);
    BIO_free(s.out);
    s.in = s.out = nullptr;
    return;
  }
  SSL_set_bio(s.ssl, s.in, s.out);
  SSL_set_app_data(s.ssl, &s);
  if (s.context->role == TlsContext::Role::client) {
    SSL_set_connect_state(s.ssl);
  } else {
    SSL_set_accept_state(s.ssl);
  }
}

TlsStream::~TlsStream() = default;

TlsStream::TlsStream(TlsStream&& other) noexcept = default;

TlsStream& TlsStream::operator=(TlsStream&& other) noexcept {
  if (this != &other) {
    close();
    session_ = std::move(other.session_);
    lower_ = std::move(other.lower_);
  }
  return *this;
}

bool TlsStream::isOpen() const noexcept {
  return session_ && lower_ && !session_->closed.load(std::memory_order_acquire) && lower_->isOpen();
}

void TlsStream::close() noexcept {
  if (session_) session_->closed.store(true, std::memory_order_release);
  if (lower_) lower_->close();
}

std::string TlsStream::peerName() const { return lower_ ? lower_->peerName() : std::string(); }

void TlsStream::handshake(const std::string& serverName) {
  std::error_code ec;
  handshake(serverName, ec);
  throwIfError(ec, "tls handshake", peerName());
}

void TlsStream::handshake(const std::string& serverName, std::error_code& ec) noexcept {
  ec.clear();
  if (!isOpen()) {
    ec = Errc::not_open;
    return;
  }
  TlsSession& s = *session_;
  if (s.setupError) {
    ec = s.setupError;
    return;
  }
  Claim reading(s.reading);
  Claim writing(s.writing);
  if (!reading.held() || !writing.held()) {
    ec = Errc::socket_busy;
    return;
  }
  if (s.handshaken.load(std::memory_order_acquire)) return;
  // A flight cut off before: the peer waits for the rest of it.
  if (s.outputBroken.load(std::memory_order_acquire)) {
    ec = brokenOutput();
    return;
  }
  if (s.context->role == TlsContext::Role::client && SSL_in_before(s.ssl)) {
    std::lock_guard<std::mutex> lock(s.sslLock);
    try {
      if ((ec = prepareClient(s, serverName, lower_->peerName()))) return;
    } catch (const std::bad_alloc&) {
      ec = std::make_error_code(std::errc::not_enough_memory);
      return;
    }
  }
  const LowerCalls lower{*lower_, cancelMarkOf(*lower_, false), cancelMarkOf(*lower_, true), &readSomeSinceOf,
                         &writeAllSinceOf};
  for (;;) {
    int result;
    int error = SSL_ERROR_NONE;
    std::error_code failure;
    bool pending;
    {
      std::lock_guard<std::mutex> lock(s.sslLock);
      detail::clearTlsErrorQueue();
      result = SSL_do_handshake(s.ssl);
      if (result != 1) {
        error = SSL_get_error(s.ssl, result);
        if (error != SSL_ERROR_WANT_READ) {
          failure = detail::tlsErrorFromQueue(s.ssl, true, makeTlsError(TlsErrc::handshake_failed));
        }
      }
      pending = !s.made.empty();
    }
    // Our flight, or the alert that tells the peer why we give up.
    if (pending) {
      std::error_code sent;
      flushPending(s, lower, sent);
      if (sent && !failure) {
        ec = sent;
        return;
      }
    }
    if (failure) {
      ec = failure;
      return;
    }
    if (result == 1) {
      s.handshaken.store(true, std::memory_order_release);
      return;
    }
    if (!feed(s, lower, ec)) return;
  }
}

Stream::CancelMark TlsStream::cancelMark(bool writing) const noexcept {
  return lower_ ? cancelMarkOf(*lower_, writing) : 0;
}

std::size_t TlsStream::readSome(void* buffer, std::size_t size, std::error_code& ec) noexcept {
  return readSomeSince(cancelMark(false), buffer, size, ec);
}

std::size_t TlsStream::readSomeSince(CancelMark mark, void* buffer, std::size_t size, std::error_code& ec) noexcept {
  if ((ec = transferError(isOpen(), mark, session_.get(), buffer, size)) || size == 0) return 0;
  TlsSession& s = *session_;
  Claim reading(s.reading);
  if (!reading.held()) {
    ec = Errc::socket_busy;
    return 0;
  }
  // A reader's replies (a key update) go out under a mark of their own:
  // the caller's is for reading.
  const LowerCalls lower{*lower_, mark, cancelMarkOf(*lower_, true), &readSomeSinceOf, &writeAllSinceOf};
  const int want = static_cast<int>(std::min<std::size_t>(size, INT_MAX));
  for (;;) {
    int result;
    int error = SSL_ERROR_NONE;
    std::error_code failure;
    std::size_t pending;
    bool tls13;
    {
      std::lock_guard<std::mutex> lock(s.sslLock);
      detail::clearTlsErrorQueue();
      result = SSL_read(s.ssl, buffer, want);
      if (result <= 0) {
        error = SSL_get_error(s.ssl, result);
        if (error == SSL_ERROR_ZERO_RETURN) {
          failure = Errc::end_of_stream;
        } else if (error != SSL_ERROR_WANT_READ) {
          failure = detail::tlsErrorFromQueue(s.ssl, false, std::make_error_code(std::errc::protocol_error));
        }
      }
      pending = s.made.size();
      if (pending != 0) s.outputPending.store(true);
      tls13 = SSL_version(s.ssl) == TLS1_3_VERSION;
    }
    // What a TLS 1.3 read made OpenSSL write without failing, the answer
    // to a key update, waits for the next write, which sends it ahead of
    // its own records: it need only come before our next data (RFC 8446,
    // 4.6.3), and a reader that wrote could wait on a lower stream the peer
    // does not read while the peer waits for this reader.  The reader sends
    // what it made itself (or leaves it to the call holding outputLock)
    // when its read failed (the alert saying why: there may be no next
    // write), on TLS 1.2 (the warning that refuses a renegotiation, which
    // the peer waits for), and when answers pile up past kAnswerBacklog (a
    // peer asking for key updates on a connection that is only read).
    // When data came with it, a failure to send shows on the next write.
    if (pending != 0 && (failure || !tls13 || pending > kAnswerBacklog)) {
      std::error_code sent;
      sendLeftOutput(s, lower, sent);
      if (sent && result <= 0 && !failure) failure = sent;
      // Still not taken (outputPending is cleared by every drain): a write
      // holds the output and cannot send.  The reader must not wait for it,
      // but a peer that reads nothing and asks for key updates on and on
      // may not grow our memory without bound either.
      if (!failure && pending > kAnswerLimit && s.outputPending.load()) {
        failure = std::make_error_code(std::errc::no_buffer_space);
      }
    }
    if (result > 0) return static_cast<std::size_t>(result);
    if (failure) {
      ec = failure;
      return 0;
    }
    if (!feed(s, lower, ec)) return 0;
  }
}

std::size_t TlsStream::writeSome(const void* buffer, std::size_t size, std::error_code& ec) noexcept {
  return writeBuffer(cancelMark(true), buffer, size, ec);
}

std::size_t TlsStream::writeSomeSince(CancelMark mark, const ConstBuffer* buffers, std::size_t count,
                                      std::error_code& ec) noexcept {
  // As Stream's gather writeSome(): the first non-empty piece.
  if ((ec = detail::checkPieces(buffers, count))) return 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (buffers[i].size != 0) return writeBuffer(mark, buffers[i].data, buffers[i].size, ec);
  }
  ec.clear();
  return 0;
}

std::size_t TlsStream::writeBuffer(CancelMark mark, const void* buffer, std::size_t size, std::error_code& ec) noexcept {
  if ((ec = transferError(isOpen(), mark, session_.get(), buffer, size)) || size == 0) return 0;
  TlsSession& s = *session_;
  Claim writing(s.writing);
  if (!writing.held()) {
    ec = Errc::socket_busy;
    return 0;
  }
  const LowerCalls lower{*lower_, cancelMarkOf(*lower_, false), mark, &readSomeSinceOf, &writeAllSinceOf};
  const int chunk = static_cast<int>(std::min(size, kMaxWrite));
  int result = 0;
  withOutputLock(s, ec, [&] {
    std::error_code failure;
    {
      std::lock_guard<std::mutex> lock(s.sslLock);
      detail::clearTlsErrorQueue();
      result = SSL_write(s.ssl, buffer, chunk);
      if (result <= 0) {
        failure = detail::tlsErrorFromQueue(s.ssl, false, std::make_error_code(std::errc::protocol_error));
      }
      drainLocked(s);
    }
    sendDrained(s, lower, ec);
    if (!ec && failure) ec = failure;
  });
  // A reader's records left while this write held the lock: their failure
  // to go out shows on the next call, not on this write, which was sent.
  std::error_code ignored;
  sendLeftOutput(s, lower, ignored);
  return ec ? 0 : static_cast<std::size_t>(result);
}

void TlsStream::shutdown() {
  std::error_code ec;
  shutdown(ec);
  throwIfError(ec, "tls shutdown", peerName());
}

void TlsStream::shutdown(std::error_code& ec) noexcept {
  ec.clear();
  if (!isOpen()) {
    ec = Errc::not_open;
    return;
  }
  TlsSession& s = *session_;
  if (!s.handshaken.load(std::memory_order_acquire)) {
    ec = makeTlsError(TlsErrc::not_handshaken);
    return;
  }
  Claim writing(s.writing);
  if (!writing.held()) {
    ec = Errc::socket_busy;
    return;
  }
  const LowerCalls lower{*lower_, cancelMarkOf(*lower_, false), cancelMarkOf(*lower_, true), &readSomeSinceOf,
                         &writeAllSinceOf};
  withOutputLock(s, ec, [&] {
    std::error_code failure;
    {
      std::lock_guard<std::mutex> lock(s.sslLock);
      detail::clearTlsErrorQueue();
      // 0: close_notify sent, the peer's not yet seen; 1: both; <0: error.
      // Sent once: a second call has nothing to send.
      if ((SSL_get_shutdown(s.ssl) & SSL_SENT_SHUTDOWN) == 0 && SSL_shutdown(s.ssl) < 0) {
        failure = detail::tlsErrorFromQueue(s.ssl, false, std::make_error_code(std::errc::protocol_error));
      }
      drainLocked(s);
    }
    sendDrained(s, lower, ec);
    if (!ec && failure) ec = failure;
  });
  std::error_code ignored;
  sendLeftOutput(s, lower, ignored);
}

bool TlsStream::isHandshaken() const noexcept {
  return session_ && session_->handshaken.load(std::memory_order_acquire);
}

std::string TlsStream::protocolVersion() const {
  if (!isHandshaken()) return {};
  std::lock_guard<std::mutex> lock(session_->sslLock);
  return SSL_get_version(session_->ssl);
}

std::string TlsStream::alpnProtocol() const {
  if (!isHandshaken()) return {};
  std::lock_guard<std::mutex> lock(session_->sslLock);
  const unsigned char* name = nullptr;
  unsigned int length = 0;
  SSL_get0_alpn_selected(session_->ssl, &name, &length);
  return name == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(name), length);
}

std::string TlsStream::peerCertificateSubject() const {
  if (!isHandshaken()) return {};
  X509* certificate;
  {
    std::lock_guard<std::mutex> lock(session_->sslLock);
    certificate = SSL_get1_peer_certificate(session_->ssl);
  }
  if (certificate == nullptr) return {};
  std::unique_ptr<X509, decltype(&X509_free)> owned(certificate, &X509_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> text(BIO_new(BIO_s_mem()), &BIO_free);
  if (!text || X509_NAME_print_ex(text.get(), X509_get_subject_name(certificate), 0, XN_FLAG_RFC2253) < 0) {
    detail::clearTlsErrorQueue();
    return {};
  }
  char* data = nullptr;
  const long length = BIO_get_mem_data(text.get(), &data);
  return length > 0 ? std::string(data, static_cast<std::size_t>(length)) : std::string();
}

bool TlsStream::sessionReused() const noexcept {
  if (!isHandshaken()) return false;
  std::lock_guard<std::mutex> lock(session_->sslLock);
  return SSL_session_reused(session_->ssl) == 1;
}

}  // namespace evchan
