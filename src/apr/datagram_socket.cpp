// SPDX-License-Identifier: Apache-2.0
// Opening UDP sockets and converting their addresses: shared by UdpSocket
// and the datagram events on every host.
#include "apr/datagram_io.h"

#include <evchan/error.h>

#include "apr/host_lookup.h"

namespace evchan::detail {

Address senderAddress(const apr_sockaddr_t& raw) noexcept {
  apr_sockaddr_t sender = raw;
  // The port in network order, read as bytes: no byte-order call needed.
  const unsigned char* port = nullptr;
  if (raw.sa.sin.sin_family == AF_INET) {
    sender.family = APR_INET;
    sender.ipaddr_ptr = &sender.sa.sin.sin_addr;
    sender.ipaddr_len = sizeof sender.sa.sin.sin_addr;
    port = reinterpret_cast<const unsigned char*>(&sender.sa.sin.sin_port);
#if APR_HAVE_IPV6
  } else if (raw.sa.sin.sin_family == AF_INET6) {
    sender.family = APR_INET6;
    sender.ipaddr_ptr = &sender.sa.sin6.sin6_addr;
    sender.ipaddr_len = sizeof sender.sa.sin6.sin6_addr;
    port = reinterpret_cast<const unsigned char*>(&sender.sa.sin6.sin6_port);
#endif
  } else {
    return Address();
  }
  sender.port = static_cast<apr_port_t>(port[0] << 8 | port[1]);
  try {
    return toAddress(&sender);
  } catch (...) {
    return Address();  // out of memory for the text: the datagram still counts
  }
}

std::error_code datagramTarget(const Address& to, apr_sockaddr_t& target) noexcept {
  if (to.empty()) return Errc::no_address;
  if (to.port() < 0 || to.port() > 65535) return Errc::port_out_of_range;
  if (!fillNumericSockaddr(to, target)) return std::make_error_code(std::errc::invalid_argument);
  return {};
}

std::unique_ptr<SocketState> openDatagramSocket(AddressFamily family, std::error_code& ec) {
  apr_int32_t aprFamily = APR_INET;
  if (family == AddressFamily::IPv6) {
#if APR_HAVE_IPV6
    aprFamily = APR_INET6;
#else
    ec = std::make_error_code(std::errc::address_family_not_supported);
    return nullptr;
#endif
  } else if (family != AddressFamily::IPv4) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return nullptr;
  }
  auto state = std::make_unique<SocketState>();
  state->pool = createPool(ec);
  if (!state->pool) return nullptr;
  apr_status_t status = apr_socket_create(&state->socket, aprFamily, SOCK_DGRAM, APR_PROTO_UDP, state->pool.get());
  if (status == APR_SUCCESS) status = apr_socket_timeout_set(state->socket, 0);
  if ((ec = makeAprError(status))) return nullptr;  // the pool's cleanup closes a half-made socket
  ec.clear();
  return state;
}

}  // namespace evchan::detail
