// Internal: what a TcpSocket or TcpListener owns.
#ifndef EVCHAN_SRC_APR_SOCKET_STATE_H
#define EVCHAN_SRC_APR_SOCKET_STATE_H

#include <string>

#include <apr_network_io.h>

#include <evchan/address.h>
#include <evchan/duration.h>

#include "apr/apr_runtime.h"

namespace evchan::detail {

/// One open socket: its own pool (destroying the pool closes the socket),
/// the APR socket, the per-step timeout and the peer's text for errors.
/// The APR socket is always in non-blocking mode (APR timeout 0); waiting
/// is done by waitReady() so that later layers can replace it.
struct SocketState {
  PoolPtr pool;
  apr_socket_t* socket = nullptr;
  Duration timeout = kInfiniteTimeout;
  std::string peer;
};

/// The address `which` (APR_LOCAL or APR_REMOTE) of the socket;
/// Errc::not_open when `state` is null.
Address socketAddress(const SocketState* state, apr_interface_e which, std::error_code& ec) noexcept;

/// Sets the per-step timeout: Errc::not_open when `state` is null,
/// Errc::negative_timeout below zero.
std::error_code setTimeout(SocketState* state, Duration timeout) noexcept;

/// The peer text for error messages; empty when `state` is null.
const std::string& peerOf(const SocketState* state) noexcept;

/// Converts an APR socket address into an Address.
Address toAddress(const apr_sockaddr_t* sockaddr);

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_SOCKET_STATE_H
