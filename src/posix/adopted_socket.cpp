// SPDX-License-Identifier: Apache-2.0
// adoptSocketDescriptor(): a descriptor wrapped as a TcpSocket that owns it.
#include "posix/adopted_socket.h"

#include <unistd.h>

#include <cstdint>
#include <memory>
#include <new>

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

std::unique_ptr<SocketState> adoptDescriptor(int fd, const std::string& peer, std::error_code& ec) noexcept {
  std::unique_ptr<SocketState> state;
  try {
    state = std::make_unique<SocketState>();
  } catch (const std::bad_alloc&) {
    ::close(fd);
    ec = std::make_error_code(std::errc::not_enough_memory);
    return nullptr;
  }
  state->pool = createPool(ec);
  if (!state->pool) {
    ::close(fd);
    return nullptr;
  }
  // From here the pool owns the descriptor: destroying it (after the
  // watch has unregistered it from any channel) closes it.
  apr_pool_cleanup_register(state->pool.get(), reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)),
                            closeDescriptor, apr_pool_cleanup_null);
  apr_os_sock_t native = fd;
  apr_status_t status = apr_os_sock_put(&state->socket, &native, state->pool.get());
  if (status == APR_SUCCESS) status = apr_socket_timeout_set(state->socket, 0);
  if ((ec = makeAprError(status))) return nullptr;
  try {
    state->peer = peer;
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
    return nullptr;
  }
  return state;
}

TcpSocket adoptSocketDescriptor(int fd, const std::string& peer, std::error_code& ec) noexcept {
  return SocketAccess::adopt(adoptDescriptor(fd, peer, ec));
}

}  // namespace evchan::detail
