// SPDX-License-Identifier: Apache-2.0
// A listening TCP socket.
#ifndef EVCHAN_TCP_LISTENER_H
#define EVCHAN_TCP_LISTENER_H

#include <functional>
#include <memory>
#include <system_error>

#include <evchan/address.h>
#include <evchan/duration.h>
#include <evchan/endpoint.h>
#include <evchan/export.h>
#include <evchan/tcp_socket.h>

namespace evchan {

/// How TcpListener::acceptWithBackoff() waits while the process (or the
/// system) is out of descriptors.  The first wait is `initialDelay`; each
/// next one doubles, up to `maxDelay`.
struct EVCHAN_API AcceptBackoff {
  /// The first wait; must be positive.
  Duration initialDelay = std::chrono::milliseconds(1);
  /// The longest wait; at least initialDelay.
  Duration maxDelay = std::chrono::milliseconds(500);
  /// Called before each wait with the error that caused it and the delay
  /// about to be waited (to log "out of descriptors", or to count); may be
  /// empty.  Runs on the accepting thread or task; must not throw.
  std::function<void(const std::error_code& error, Duration delay)> onWait;
};

/// A TCP socket listening for connections.  Move-only; the destructor
/// closes it.  Error forms as for TcpSocket.
///
/// Thread safety: accept() may be called from several threads and tasks at
/// once.  Tasks of one channel take turns: one at a time waits in the
/// kernel, the others wait behind it in the order they came, each within
/// its own timeout, and cancel(), close() and TaskHandle::cancel() end them
/// wherever they are (an AcceptEvent posted on the channel directly is not
/// a task's call: tasks that find one waiting fail with Errc::socket_busy,
/// since nothing would tell them when it is done).  cancel() and close()
/// may be called from any thread or task while others are inside accept()
/// (or any other call but the destructor and a move): cancel() ends the
/// waiting accept() calls with std::errc::operation_canceled and leaves the
/// listener open; close() ends them the same way, waits until they have
/// returned and then closes the descriptor; later calls fail with
/// Errc::not_open.  This is how a server stops accepting.
/// acceptWithBackoff() ends with operation_canceled too, a cancel() during
/// one of its back-off sleeps included (when the sleep ends: close() may
/// wait that long).  cancel(), close(), the timeout and the rest of the
/// rules are StreamListener's (see there).
class EVCHAN_API TcpListener : public StreamListener {
 public:
  /// A closed listener; every call on it fails with Errc::not_open.
  TcpListener() noexcept;
  /// Closes the listener if open.
  ~TcpListener() override;
  /// Takes over `other`'s socket; `other` is left closed.
  TcpListener(TcpListener&& other) noexcept;
  /// Closes this listener, then takes over `other`'s; `other` is left closed.
  TcpListener& operator=(TcpListener&& other) noexcept;
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;

  ///@{
  /// Binds to `endpoint` and listens.  An empty host means every local
  /// address (IPv6 and IPv4 where the system allows both); port 0 lets the
  /// kernel pick a free port, reported by port().  SO_REUSEADDR is set.
  /// A host name is resolved as resolve() does (the first address it
  /// gives; inside a task on the channel's resolver threads, so the worker
  /// runs other tasks meanwhile); a numeric host or none is not looked up.
  static TcpListener listen(const Endpoint& endpoint, int backlog = 511);
  static TcpListener listen(const Endpoint& endpoint, int backlog,
                            std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// Waits for the next connection, at most timeout() (then timed_out).
  /// When the process is at its descriptor limit (RLIMIT_NOFILE) it fails
  /// with std::errc::too_many_files_open (too_many_files_open_in_system
  /// at the system's), and the connection stays queued: the listener is
  /// still readable, so a loop that calls accept() again at once spins,
  /// burning a core until a descriptor frees.  Use acceptWithBackoff().
  TcpSocket accept();
  TcpSocket accept(std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// As accept(), but while accepting fails for want of descriptors or
  /// kernel memory (too_many_files_open, too_many_files_open_in_system,
  /// no_buffer_space, not_enough_memory) it waits, a short and growing
  /// interval (see AcceptBackoff), and tries again, until a connection is
  /// accepted or another error comes; each try waits at most timeout(),
  /// and the back-off ends in timed_out once timeout() has passed since
  /// the call.  A zero or negative initialDelay, or a maxDelay below it,
  /// is std::errc::invalid_argument.  Inside a task the waits suspend the task, not
  /// its worker; once the task's channel is shut down the call fails with
  /// operation_canceled.  The pattern for a server's accept loop:
  ///
  ///     for (;;) {
  ///       TcpSocket socket = listener.acceptWithBackoff();
  ///       channel->spawn(...serve socket...);
  ///     }
  TcpSocket acceptWithBackoff(const AcceptBackoff& backoff = AcceptBackoff());
  TcpSocket acceptWithBackoff(const AcceptBackoff& backoff, std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// The bound address, with the port the kernel picked.
  Address localAddress() const;
  Address localAddress(std::error_code& ec) const noexcept;
  ///@}
  /// localAddress().port(), or 0 when closed.
  int port() const noexcept;

 private:
  friend struct detail::SocketAccess;
};

}  // namespace evchan

#endif  // EVCHAN_TCP_LISTENER_H
