// SPDX-License-Identifier: Apache-2.0
// Internal: the private parts of UdpSocket, for the channel and src/net.
#ifndef EVCHAN_SRC_APR_UDP_SOCKET_ACCESS_H
#define EVCHAN_SRC_APR_UDP_SOCKET_ACCESS_H

#include <memory>

#include <evchan/udp_socket.h>

#include "apr/socket_state.h"

namespace evchan::detail {

/// UdpSocket's friend, as SocketAccess is TcpSocket's.
struct UdpSocketAccess {
  /// What a post() pins (SocketPin) against a concurrent close().
  static const SocketStateSlot& slot(const UdpSocket& socket) noexcept { return socket.state_; }
  static UdpSocket adopt(std::unique_ptr<SocketState> state) noexcept { return UdpSocket(std::move(state)); }
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_UDP_SOCKET_ACCESS_H
