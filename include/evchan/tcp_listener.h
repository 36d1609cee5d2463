// A listening TCP socket.
#ifndef EVCHAN_TCP_LISTENER_H
#define EVCHAN_TCP_LISTENER_H

#include <memory>
#include <system_error>

#include <evchan/address.h>
#include <evchan/duration.h>
#include <evchan/endpoint.h>
#include <evchan/tcp_socket.h>

namespace evchan {

/// A TCP socket listening for connections.  Move-only; the destructor
/// closes it.  Error forms as for TcpSocket.  accept() may be called from
/// several threads at once; close() must not race with them.  close() may
/// race with the posting of AcceptEvents on the listener, as for a
/// TcpSocket's events: they are cancelled or refused with Errc::not_open.
class TcpListener {
 public:
  /// A closed listener; every call on it fails with Errc::not_open.
  TcpListener() noexcept;
  ~TcpListener();
  TcpListener(TcpListener&& other) noexcept;
  TcpListener& operator=(TcpListener&& other) noexcept;
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;

  /// Binds to `endpoint` and listens.  An empty host means every local
  /// address (IPv6 and IPv4 where the system allows both); port 0 lets the
  /// kernel pick a free port, reported by port().  SO_REUSEADDR is set.
  static TcpListener listen(const Endpoint& endpoint, int backlog = 511);
  static TcpListener listen(const Endpoint& endpoint, int backlog,
                            std::error_code& ec) noexcept;

  /// Waits for the next connection, at most timeout() (then timed_out).
  TcpSocket accept();
  TcpSocket accept(std::error_code& ec) noexcept;

  /// Closes the listener.  Idempotent.
  void close() noexcept;
  bool isOpen() const noexcept;

  /// The time accept() may wait; kInfiniteTimeout by default.
  void setTimeout(Duration timeout);
  void setTimeout(Duration timeout, std::error_code& ec) noexcept;
  Duration timeout() const noexcept;

  /// The bound address, with the port the kernel picked.
  Address localAddress() const;
  Address localAddress(std::error_code& ec) const noexcept;
  /// localAddress().port(), or 0 when closed.
  int port() const noexcept;

 private:
  friend struct detail::SocketAccess;
  detail::SocketStateSlot state_;
};

}  // namespace evchan

#endif  // EVCHAN_TCP_LISTENER_H
