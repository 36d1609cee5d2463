// SPDX-License-Identifier: Apache-2.0
// A connected TCP stream with blocking, timeout-bounded calls.
#ifndef EVCHAN_TCP_SOCKET_H
#define EVCHAN_TCP_SOCKET_H

#include <cstddef>
#include <memory>
#include <system_error>

#include <evchan/address.h>
#include <evchan/duration.h>
#include <evchan/endpoint.h>
#include <evchan/stream.h>

namespace evchan {

namespace detail {
struct SocketState;
struct SocketAccess;
}

/// A connected TCP socket.  Move-only; the destructor closes it.
///
/// Every blocking call comes in two forms: one throws evchan::SystemError
/// (naming the operation and the peer), the other takes an std::error_code&
/// and is noexcept.  Blocking calls wait at most timeout() for each step of
/// progress and then fail with std::errc::timed_out.  The peer closing the
/// stream is Errc::end_of_stream.  Writes never raise SIGPIPE: a write to a
/// closed connection fails with broken pipe or connection reset.
///
/// readExactly(), writeAll() and the throwing forms come from Stream.
///
/// Thread safety: one thread may read while another writes; any other
/// concurrent use of one socket (including close() while a call is
/// blocked) must be serialised by the caller.
class TcpSocket : public Stream {
 public:
  /// A closed socket; every call on it fails with Errc::not_open.
  TcpSocket() noexcept;
  ~TcpSocket();
  TcpSocket(TcpSocket&& other) noexcept;
  TcpSocket& operator=(TcpSocket&& other) noexcept;
  TcpSocket(const TcpSocket&) = delete;
  TcpSocket& operator=(const TcpSocket&) = delete;

  /// Resolves `endpoint` and connects to its addresses in turn until one
  /// accepts.  `timeout` bounds the whole call, resolution excluded.
  static TcpSocket connect(const Endpoint& endpoint, Duration timeout = kInfiniteTimeout);
  static TcpSocket connect(const Endpoint& endpoint, Duration timeout,
                           std::error_code& ec) noexcept;
  /// Connects to one resolved address.
  static TcpSocket connect(const Address& address, Duration timeout = kInfiniteTimeout);
  static TcpSocket connect(const Address& address, Duration timeout,
                           std::error_code& ec) noexcept;

  /// Reads what is available, at least one byte, at most `size`; waits if
  /// nothing is.  A zero `size` returns 0 at once without waiting.
  /// Returns the byte count; 0 with `ec` set on error.
  using Stream::readSome;
  std::size_t readSome(void* buffer, std::size_t size, std::error_code& ec) noexcept override;

  /// Sends what the socket takes, at least one byte, at most `size`;
  /// waits while the send buffer is full.
  using Stream::writeSome;
  std::size_t writeSome(const void* buffer, std::size_t size, std::error_code& ec) noexcept override;

  /// Sends FIN: the peer reads end_of_stream after the data already sent;
  /// this side can still read.
  void shutdownWrite();
  void shutdownWrite(std::error_code& ec) noexcept;

  /// Closes the socket and frees its resources.  Idempotent.
  void close() noexcept override;
  /// True until close() (or a move from this object).
  bool isOpen() const noexcept override;
  std::string peerName() const override;

  /// The time each blocking step may take; kInfiniteTimeout (the default)
  /// waits forever, zero fails at once with timed_out when the call would
  /// block.  A negative timeout is Errc::negative_timeout.
  void setTimeout(Duration timeout);
  void setTimeout(Duration timeout, std::error_code& ec) noexcept;
  Duration timeout() const noexcept;

  /// TCP_NODELAY: send small writes at once instead of coalescing them.
  void setNoDelay(bool on);
  void setNoDelay(bool on, std::error_code& ec) noexcept;
  /// SO_KEEPALIVE: let the kernel probe an idle connection.
  void setKeepAlive(bool on);
  void setKeepAlive(bool on, std::error_code& ec) noexcept;

  /// The local and remote addresses of the connection.
  Address localAddress() const;
  Address localAddress(std::error_code& ec) const noexcept;
  Address peerAddress() const;
  Address peerAddress(std::error_code& ec) const noexcept;

 private:
  friend class TcpListener;
  friend struct detail::SocketAccess;
  explicit TcpSocket(std::unique_ptr<detail::SocketState> state) noexcept;

  std::unique_ptr<detail::SocketState> state_;
};

}  // namespace evchan

#endif  // EVCHAN_TCP_SOCKET_H
