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
#include <evchan/export.h>
#include <evchan/stream_socket.h>

namespace evchan {

/// A connected TCP socket.  Move-only; the destructor closes it.
///
/// The reads, writes, cancel(), close(), timeouts, their error forms and
/// the thread-safety rules are StreamSocket's (see there); this class adds
/// connecting by name or address, the TCP options and the addresses.
class EVCHAN_API TcpSocket : public StreamSocket {
 public:
  /// A closed socket; every call on it fails with Errc::not_open.
  TcpSocket() noexcept;
  /// Closes the socket if open (must not race with other calls on it).
  ~TcpSocket() override;
  /// Takes over `other`'s connection; `other` is left closed.
  TcpSocket(TcpSocket&& other) noexcept;
  /// Closes this socket, then takes over `other`'s connection; `other` is
  /// left closed.
  TcpSocket& operator=(TcpSocket&& other) noexcept;
  TcpSocket(const TcpSocket&) = delete;
  TcpSocket& operator=(const TcpSocket&) = delete;

  ///@{
  /// Resolves `endpoint` and connects to its addresses in turn until one
  /// accepts.  `timeout` bounds the whole call; outside a task the
  /// resolution (see resolve()) is excluded, as it blocks the thread.
  /// On failure the error is the last address's (or the resolver's, or
  /// timed_out, which ends the tries); a negative `timeout` is
  /// Errc::negative_timeout.  The error form returns a closed socket.
  /// Inside a task every wait suspends the task: the lookup of a name (a
  /// ResolveEvent) and the connect (a ConnectEvent).
  static TcpSocket connect(const Endpoint& endpoint, Duration timeout = kInfiniteTimeout);
  static TcpSocket connect(const Endpoint& endpoint, Duration timeout,
                           std::error_code& ec) noexcept;
  ///@}
  ///@{
  /// Connects to one resolved address.
  /// Errors and the task behaviour as for the Endpoint form.
  static TcpSocket connect(const Address& address, Duration timeout = kInfiniteTimeout);
  static TcpSocket connect(const Address& address, Duration timeout,
                           std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// TCP_NODELAY: send small writes at once instead of coalescing them.
  /// Errc::not_open on a closed socket.
  void setNoDelay(bool on);
  void setNoDelay(bool on, std::error_code& ec) noexcept;
  ///@}
  ///@{
  /// SO_KEEPALIVE: let the kernel probe an idle connection.
  /// Errc::not_open on a closed socket.
  void setKeepAlive(bool on);
  void setKeepAlive(bool on, std::error_code& ec) noexcept;
  ///@}

  /// Closes the connection abortively: what is not sent yet is dropped,
  /// and the peer gets a reset (RST) instead of the orderly end of the
  /// stream, so that its next read or write fails with
  /// std::errc::connection_reset (and this side keeps no connection in
  /// FIN_WAIT or TIME_WAIT).  For a peer that stopped reading, or broke
  /// the protocol: close() would leave the kernel sending it what is
  /// queued.  Otherwise as close(): the calls under way end with
  /// operation_canceled, it may come from any thread, and on a closed
  /// socket it does nothing.
  void closeWithReset() noexcept;

  ///@{
  /// The local and remote addresses of the connection.
  /// Errc::not_open on a closed socket; the error form then returns an
  /// empty Address.
  Address localAddress() const;
  Address localAddress(std::error_code& ec) const noexcept;
  Address peerAddress() const;
  Address peerAddress(std::error_code& ec) const noexcept;
  ///@}

 private:
  friend class TcpListener;
  friend struct detail::SocketAccess;
  explicit TcpSocket(std::unique_ptr<detail::SocketState> state) noexcept;
};

}  // namespace evchan

#endif  // EVCHAN_TCP_SOCKET_H
