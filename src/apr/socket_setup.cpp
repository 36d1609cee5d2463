// Starting a connect and accepting once: shared by the blocking calls and
// the event channel.
#include <evchan/error.h>

#include "apr/socket_state.h"

namespace evchan::detail {

std::unique_ptr<SocketState> startConnect(const Address& address, bool& inProgress, std::error_code& ec) {
  inProgress = false;
  if (address.empty()) {
    ec = Errc::no_address;
    return nullptr;
  }
  if (address.port() < 0 || address.port() > 65535) {
    ec = Errc::port_out_of_range;
    return nullptr;
  }
  auto state = std::make_unique<SocketState>();
  state->pool = createPool(ec);
  if (!state->pool) return nullptr;
  apr_pool_t* pool = state->pool.get();

  apr_sockaddr_t* target = nullptr;
  const apr_int32_t family = address.family() == AddressFamily::IPv4 ? APR_INET : APR_UNSPEC;
  apr_status_t status = apr_sockaddr_info_get(&target, address.host().c_str(), family,
                                              static_cast<apr_port_t>(address.port()), 0, pool);
  if (status == APR_SUCCESS) status = apr_socket_create(&state->socket, target->family, SOCK_STREAM, APR_PROTO_TCP, pool);
  if (status == APR_SUCCESS) status = apr_socket_timeout_set(state->socket, 0);
  if (status == APR_SUCCESS) status = apr_socket_connect(state->socket, target);
  if (APR_STATUS_IS_EINPROGRESS(status) || APR_STATUS_IS_EAGAIN(status)) {
    inProgress = true;
  } else if ((ec = makeAprError(status))) {
    return nullptr;  // the pool's cleanup closes the half-made socket
  }
  ec.clear();
  state->peer = address.toString();
  return state;
}

std::unique_ptr<SocketState> acceptOnce(apr_socket_t* listener, std::error_code& ec) {
  auto accepted = std::make_unique<SocketState>();
  accepted->pool = createPool(ec);
  if (!accepted->pool) return nullptr;
  for (;;) {
    const apr_status_t status = apr_socket_accept(&accepted->socket, listener, accepted->pool.get());
    if (status == APR_SUCCESS) break;
    // A connection reset while it waited in the queue is not our caller's error.
    if (APR_STATUS_IS_ECONNABORTED(status) || APR_STATUS_IS_EINTR(status)) continue;
    ec = makeAprError(status);
    return nullptr;
  }
  if ((ec = makeAprError(apr_socket_timeout_set(accepted->socket, 0)))) return nullptr;
  accepted->peer = socketAddress(accepted.get(), APR_REMOTE, ec).toString();
  ec.clear();  // the peer text is only for error messages
  return accepted;
}

}  // namespace evchan::detail
