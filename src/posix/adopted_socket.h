// SPDX-License-Identifier: Apache-2.0
// Internal: a socket descriptor made elsewhere (socketpair, an AF_UNIX
// connection) wrapped as a TcpSocket, so that its waits use the TcpSocket
// machinery: a task waiting on it is suspended, a thread polls.
#ifndef EVCHAN_SRC_POSIX_ADOPTED_SOCKET_H
#define EVCHAN_SRC_POSIX_ADOPTED_SOCKET_H

#include <memory>
#include <string>
#include <system_error>

#include <evchan/tcp_socket.h>

namespace evchan::detail {

struct SocketState;

/// A socket state (what a StreamSocket or StreamListener owns) that owns
/// `fd` (closes it); `peer` names it in errors.  On error `fd` is closed
/// and null returned.
std::unique_ptr<SocketState> adoptDescriptor(int fd, const std::string& peer, std::error_code& ec) noexcept;

/// The TcpSocket then owns `fd` (closes it); `peer` names it in errors.
/// On error `fd` is closed and the socket returned closed.
TcpSocket adoptSocketDescriptor(int fd, const std::string& peer, std::error_code& ec) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_POSIX_ADOPTED_SOCKET_H
