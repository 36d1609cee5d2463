// SPDX-License-Identifier: Apache-2.0
// Internal: what a StreamSocket or StreamListener owns.
#ifndef EVCHAN_SRC_APR_SOCKET_STATE_H
#define EVCHAN_SRC_APR_SOCKET_STATE_H

#include <atomic>
#include <memory>
#include <string>

#include <apr_network_io.h>
#include <apr_portable.h>

#include <evchan/address.h>
#include <evchan/duration.h>
#include <evchan/tcp_listener.h>
#include <evchan/tcp_socket.h>

#include "apr/apr_runtime.h"
#include "apr/task_turns.h"
#include "apr/wait_cancellation.h"
#include "poller/watch_handle.h"

namespace evchan::detail {

/// One open socket: its own pool (destroying the pool closes the socket),
/// the APR socket, the per-step timeout, the peer's text for errors and its
/// registration with an event channel.  The APR socket is always in
/// non-blocking mode (APR timeout 0); waiting is done by waitReady() or by
/// the channel.  Members are destroyed in reverse order: the channel lets
/// go of the socket before the pool closes the descriptor.  `cancellation`
/// holds the blocking calls under way (see SocketCall in src/net); `turns`
/// the tasks that wait in turn for the channel's slot.  What every call
/// reads comes first, line-aligned: the socket, the timeout and the hot
/// atomics of `cancellation` in the first line, the channel's watch
/// (WatchHandle's head) right after `cancellation`'s lock; with many
/// connections each is a cold fetch per call.
struct alignas(64) SocketState {
  PoolPtr pool;
  apr_socket_t* socket = nullptr;
  /// `socket`'s native descriptor once nativeSocket() has read it.
  std::atomic<apr_os_sock_t> native{kNoNativeSocket};
  std::atomic<Duration> timeout{kInfiniteTimeout};  // set while calls read it
  WaitCancellation cancellation;
  WatchHandle watch;
  TaskTurns turns;
  std::string peer;

  static constexpr apr_os_sock_t kNoNativeSocket = static_cast<apr_os_sock_t>(-1);
};

/// The native descriptor of the state's (set, never replaced) socket, kept
/// in the state after the first call: a send reads it without fetching the
/// apr_socket_t, one more cold object per call with many connections.
inline apr_os_sock_t nativeSocket(SocketState& state) noexcept {
  apr_os_sock_t fd = state.native.load(std::memory_order_relaxed);
  if (fd == SocketState::kNoNativeSocket) {
    (void)apr_os_sock_get(&fd, state.socket);  // cannot fail for a set socket
    state.native.store(fd, std::memory_order_relaxed);
  }
  return fd;
}

/// The private parts of the stream sockets and listeners (their friend).
struct SocketAccess {
  static SocketState* state(const StreamSocket& socket) noexcept { return socket.state_.get(); }
  static SocketState* state(const StreamListener& listener) noexcept { return listener.state_.get(); }
  static TcpSocket adopt(std::unique_ptr<SocketState> state) noexcept { return TcpSocket(std::move(state)); }
  /// What a post() pins (SocketPin) against a concurrent close().
  static const SocketStateSlot& slot(const StreamSocket& socket) noexcept { return socket.state_; }
  static const SocketStateSlot& slot(const StreamListener& listener) noexcept { return listener.state_; }
  static SocketStateSlot& slot(StreamListener& listener) noexcept { return listener.state_; }
  static std::unique_ptr<SocketState> release(StreamSocket& socket) noexcept { return socket.state_.take(); }
};

/// Holds a socket's state against a concurrent close() (see
/// SocketStateSlot): get() is null when the socket was closed already.
/// Keep it only for a few non-blocking steps, and never across anything
/// that may close this socket on this thread (a completion that runs a
/// callback inline): close() waits for the pin to go.
class SocketPin {
 public:
  explicit SocketPin(const SocketStateSlot& slot) noexcept;
  ~SocketPin() { release(); }
  SocketPin(const SocketPin&) = delete;
  SocketPin& operator=(const SocketPin&) = delete;

  SocketState* get() const noexcept { return state_; }
  /// Lets go early; get() is null afterwards.
  void release() noexcept;

 private:
  const SocketStateSlot* slot_;
  SocketState* state_ = nullptr;
};

/// The address `which` (APR_LOCAL or APR_REMOTE) of the socket;
/// Errc::not_open when `state` is null.  Safe from several threads at once
/// (APR fills in the address it keeps the first time it is asked).
Address socketAddress(const SocketState* state, apr_interface_e which, std::error_code& ec) noexcept;
/// The APR family (APR_INET, APR_INET6) of `state`'s local address, or
/// APR_UNSPEC when it cannot be had.  Safe from several threads at once,
/// as socketAddress() is.
int socketFamily(const SocketState* state) noexcept;

/// Sets the per-step timeout: Errc::not_open when `state` is null,
/// Errc::negative_timeout below zero.
std::error_code setTimeout(SocketState* state, Duration timeout) noexcept;

/// The peer text for error messages; empty when `state` is null.
const std::string& peerOf(const SocketState* state) noexcept;

/// Opens a non-blocking socket in a fresh pool and starts connecting it to
/// `address`.  Returns the socket with `inProgress` true while the connect
/// is under way (wait for writability, then pendingConnectResult()), or
/// null with `ec` set.
std::unique_ptr<SocketState> startConnect(const Address& address, bool& inProgress, std::error_code& ec);

/// Opens a non-blocking socket in a fresh pool for connecting to
/// `address`, without connecting it: `target` receives the resolved address
/// (allocated in the socket's pool).  Null with `ec` set on failure.
std::unique_ptr<SocketState> openForConnect(const Address& address, apr_sockaddr_t*& target, std::error_code& ec);

/// Wraps `fd`, a connection a completion backend accepted on `listener`
/// (non-blocking already), as a socket that owns `fd`.  Null with `ec` set
/// on failure; `owned` then says whether `fd` is closed already (false: the
/// caller closes it).
std::unique_ptr<SocketState> adoptAccepted(apr_socket_t* listener, apr_os_sock_t fd, bool& owned,
                                           std::error_code& ec);

/// One non-blocking accept on `listener`: the new connection, or null with
/// `ec` set (the would-block status when none is queued).  Connections
/// aborted while queued are skipped.
std::unique_ptr<SocketState> acceptOnce(apr_socket_t* listener, std::error_code& ec);

/// Converts an APR socket address into an Address.
Address toAddress(const apr_sockaddr_t* sockaddr);

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_SOCKET_STATE_H
