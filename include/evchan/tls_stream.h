// SPDX-License-Identifier: Apache-2.0
// TlsStream: TLS over any Stream it owns (TcpSocket, ShmStream, ...).
#ifndef EVCHAN_TLS_STREAM_H
#define EVCHAN_TLS_STREAM_H

#include <cstddef>
#include <memory>
#include <string>
#include <system_error>

#include <evchan/export.h>
#include <evchan/stream.h>
#include <evchan/tls_context.h>
#include <evchan/tls_error.h>

namespace evchan {

namespace detail {
struct TlsSession;
}

/// A TLS connection over another Stream, which it owns: a TcpSocket, a
/// ShmStream, any Stream.  OpenSSL never touches the lower stream itself:
/// it works on memory buffers, and TlsStream moves the bytes with the lower
/// stream's readSome() and writeAll().  So inside a task every wait
/// suspends the task (never its worker thread), on a plain thread it blocks
/// the thread, and each wait is bounded by the lower stream's timeout and
/// ended by its cancel() (std::errc::timed_out, operation_canceled).
///
/// Use: construct it over a connected stream, call handshake() (a client
/// names the server it meant to reach), then read and write through the
/// Stream interface (readExactly(), writeAll() and BufferedReader work on
/// it), and shutdown() to send close_notify before close().
///
/// Errors: tls_category() codes (compare with TlsErrc), the lower stream's
/// errors as they came, and Errc::end_of_stream only once the peer's
/// close_notify came; a peer that closes without it makes the read fail
/// with TlsErrc::truncated.  The throwing forms throw SystemError naming the
/// operation ("tls handshake", "read", ...) and the lower stream's peer.
/// OpenSSL reports what a call did through the calling thread's error
/// queue: each call first empties it of what other code left there, so
/// that an error left over cannot turn the call into a failure.
/// A write, shutdown() or handshake flight that the lower stream ends
/// part-way (its timeout, its cancel(), an error) reports that error, and
/// leaves TLS records half sent that can be neither dropped nor sent
/// again: from then on every write, shutdown() and handshake() fails with
/// std::errc::broken_pipe (reads go on); the peer may have received part
/// of the data.  Close the connection.
///
/// Thread safety: one reader and one writer may run at once (one task or
/// thread in readSome(), another in writeSome()); a second concurrent
/// reader, or writer, fails with Errc::socket_busy.  While handshake()
/// runs, a read or write fails with TlsErrc::not_handshaken and a second
/// handshake() with socket_busy; shutdown() takes the writer's turn (a
/// write meanwhile is socket_busy), and a read may go on during it to see
/// the peer's close_notify.  One SSL object carries both
/// directions, so the calls take turns on it under a short lock that is
/// never held while waiting; the bytes each direction sends go out in
/// order under a task-aware Mutex.  A reader never waits for a writer, and
/// on TLS 1.3 a key update the peer asks for is answered ahead of the next
/// write's data (all RFC 8446 asks), not by the reader, so both ends may
/// write a large message before reading the other's.  The reader writes
/// only to send the alert of a read that fails, TLS 1.2's refusal of a
/// renegotiation, or answers piling up past 16 KiB on a connection only
/// read (and, when a write is sending, leaves them to it).  Past 1 MiB of
/// answers held for a write that cannot send (a peer asking for key
/// updates while it reads nothing), a read fails with
/// std::errc::no_buffer_space.  close() may be called from any thread
/// while others wait (it closes the lower stream, whose waits end with
/// operation_canceled); the destructor and moves must not race with any
/// other call.  Renegotiation is refused.
class EVCHAN_API TlsStream : public Stream {
 public:
  /// A closed stream; every call fails with Errc::not_open.
  TlsStream() noexcept;
  /// A TLS connection, not yet handshaken, over `lower` (which it owns and
  /// closes) with the settings of `context` (shared, kept alive).  A null
  /// or closed `lower` gives a stream whose calls fail with Errc::not_open.
  /// A TcpSocket `lower` gets TCP_NODELAY: records go out whole, and
  /// Nagle's algorithm would only delay them (a server's first message
  /// after a TLS 1.3 handshake by the peer's delayed ACK, 40 ms on Linux);
  /// lowerLayer() can turn it off again.
  TlsStream(const TlsContext& context, std::unique_ptr<Stream> lower) noexcept;
  /// Frees the TLS state and closes the lower stream (no close_notify:
  /// call shutdown() first for that).  Must not race with other calls.
  ~TlsStream() override;
  /// Takes over `other`'s connection; `other` is left closed.
  TlsStream(TlsStream&& other) noexcept;
  /// Closes this stream, then takes over `other`'s connection.
  TlsStream& operator=(TlsStream&& other) noexcept;
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  ///@{
  /// Runs the TLS handshake.  A client sends `serverName` as SNI and, unless
  /// the context skips verification, checks the server's certificate
  /// against it (a host name, or an IP address in the certificate's
  /// subjectAltName); an empty name on a verifying client is
  /// TlsErrc::missing_server_name, and a name with a NUL in it
  /// std::errc::invalid_argument.  A server ignores `serverName`.  Errors:
  /// TlsErrc::verification_failed (with the reason: expired, unknown CA,
  /// host name mismatch, ...), handshake_failed, protocol_version,
  /// truncated (the peer closed), the lower stream's (timed_out, reset).
  /// A second handshake() after success is harmless and does nothing.
  void handshake(const std::string& serverName = {});
  void handshake(const std::string& serverName, std::error_code& ec) noexcept;
  ///@}

  /// Reads decrypted bytes, at least one and at most `size`, waiting on the
  /// lower stream while none are ready.  Errc::end_of_stream after the
  /// peer's close_notify, TlsErrc::truncated when the lower stream ended
  /// without it, TlsErrc::not_handshaken before handshake().
  using Stream::readSome;
  std::size_t readSome(void* buffer, std::size_t size, std::error_code& ec) noexcept override;

  /// Encrypts up to 256 KiB of `buffer` and writes the records to the
  /// lower stream (all of them, before it returns); returns the bytes
  /// taken.  TlsErrc::not_handshaken before handshake().
  using Stream::writeSome;
  std::size_t writeSome(const void* buffer, std::size_t size, std::error_code& ec) noexcept override;

  ///@{
  /// Sends close_notify: the peer reads Errc::end_of_stream after the data
  /// already sent.  This side may still read until the peer's own
  /// close_notify.  Does not wait for the peer.  Idempotent.
  void shutdown();
  void shutdown(std::error_code& ec) noexcept;
  ///@}

  /// Closes the lower stream (waits on it end with operation_canceled) and
  /// makes later calls fail with Errc::not_open.  No close_notify (see
  /// shutdown()).  Idempotent.
  void close() noexcept override;
  /// True until close() and while the lower stream is open.
  bool isOpen() const noexcept override;
  /// The lower stream's peer name.
  std::string peerName() const override;

  /// The stream TLS runs over, for its timeout, cancel() and addresses.
  /// Reading or writing it directly corrupts the TLS connection.  Only on
  /// a stream that is not default-constructed or moved from.
  Stream& lowerLayer() const noexcept { return *lower_; }

  /// True once handshake() succeeded.
  bool isHandshaken() const noexcept;
  /// The negotiated protocol ("TLSv1.3", "TLSv1.2"); empty before the
  /// handshake.
  std::string protocolVersion() const;
  /// The ALPN protocol the server chose; empty when none (or before).
  std::string alpnProtocol() const;
  /// The subject of the peer's certificate in OpenSSL's one-line RFC 2253
  /// form ("CN=localhost,O=evchan test"); empty when the peer sent none.
  std::string peerCertificateSubject() const;
  /// True when the handshake resumed a cached session (no full handshake).
  bool sessionReused() const noexcept;

 protected:
  ///@{
  /// The lower stream's cancel() reaches every step of readExactly() and
  /// writeAll() on this stream, TLS records apart (see
  /// Stream::cancelMark()).
  CancelMark cancelMark(bool writing) const noexcept override;
  std::size_t readSomeSince(CancelMark mark, void* buffer, std::size_t size, std::error_code& ec) noexcept override;
  std::size_t writeSomeSince(CancelMark mark, const ConstBuffer* buffers, std::size_t count,
                             std::error_code& ec) noexcept override;
  ///@}

 private:
  // writeSome() of one buffer under the lower stream's write mark `mark`.
  std::size_t writeBuffer(CancelMark mark, const void* buffer, std::size_t size, std::error_code& ec) noexcept;

  std::unique_ptr<Stream> lower_;
  std::unique_ptr<detail::TlsSession> session_;
};

}  // namespace evchan

#endif  // EVCHAN_TLS_STREAM_H
