// SPDX-License-Identifier: Apache-2.0
// adoptSocketDescriptor(): a descriptor wrapped as a TcpSocket that owns it.
#include "posix/adopted_socket.h"

#include <unistd.h>

#include <cstdint>
#include <memory>

#include <apr_portable.h>

#include <evchan/error.h>

#include "apr/socket_state.h"

namespace evchan::detail {
namespace {

apr_status_t closeDescriptor(void* fd) {
  ::close(static_cast<int>(reinterpret_cast<std::intptr_t>(fd)));
  return APR_SUCCESS;
}

}  // namespace

TcpSocket adoptSocketDescriptor(int fd, const std::string& peer, std::error_code& ec) noexcept {
  auto state = std::make_unique<SocketState>();
  state->pool = createPool(ec);
  if (!state->pool) {
    ::close(fd);
    return TcpSocket();
  }
  // From here the pool owns the descriptor: destroying it (after the
  // watch has unregistered it from any channel) closes it.
  apr_pool_cleanup_register(state->pool.get(), reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)),
                            closeDescriptor, apr_pool_cleanup_null);
  apr_os_sock_t native = fd;
  apr_status_t status = apr_os_sock_put(&state->socket, &native, state->pool.get());
  if (status == APR_SUCCESS) status = apr_socket_timeout_set(state->socket, 0);
  if ((ec = makeAprError(status))) return TcpSocket();
  try {
    state->peer = peer;
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
    return TcpSocket();
  }
  return SocketAccess::adopt(std::move(state));
}

}  // namespace evchan::detail
