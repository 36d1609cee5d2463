// Helpers shared by TcpSocket and TcpListener.
#include "apr/socket_state.h"

#include <string_view>

#include <evchan/error.h>

namespace evchan::detail {

Address toAddress(const apr_sockaddr_t* sockaddr) {
  char host[64];
  if (apr_sockaddr_ip_getbuf(host, sizeof host, const_cast<apr_sockaddr_t*>(sockaddr)) != APR_SUCCESS)
    return Address();
  // APR prints an IPv4-mapped IPv6 address (a v4 client of a dual-stack
  // listener) as plain IPv4; report it as the IPv4 address it is.
  const bool ipv6 = std::string_view(host).find(':') != std::string_view::npos;
  return Address::fromNumeric(host, sockaddr->port, ipv6 ? AddressFamily::IPv6 : AddressFamily::IPv4);
}

Address socketAddress(const SocketState* state, apr_interface_e which, std::error_code& ec) noexcept {
  if (state == nullptr) {
    ec = Errc::not_open;
    return Address();
  }
  apr_sockaddr_t* sockaddr = nullptr;
  if (apr_status_t status = apr_socket_addr_get(&sockaddr, which, state->socket); status != APR_SUCCESS) {
    ec = makeAprError(status);
    return Address();
  }
  ec.clear();
  return toAddress(sockaddr);
}

std::error_code setTimeout(SocketState* state, Duration timeout) noexcept {
  if (state == nullptr) return Errc::not_open;
  if (timeout < Duration::zero()) return Errc::negative_timeout;
  state->timeout = timeout;
  return {};
}

const std::string& peerOf(const SocketState* state) noexcept {
  static const std::string none;
  return state ? state->peer : none;
}

}  // namespace evchan::detail
