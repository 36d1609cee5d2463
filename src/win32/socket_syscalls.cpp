// sendSome(), pendingConnectResult() and setListenAddressOptions() on Windows hosts.
// APR's headers come first: apr.h includes <windows.h> and the socket
// headers (<ws2tcpip.h> among them) only when <windows.h> is not in yet.
#include <apr_portable.h>

#include <winsock2.h>

#include <evchan/error.h>

#include "apr/socket_io.h"

namespace evchan::detail {

std::error_code sendSome(apr_socket_t* socket, const void* data, std::size_t size,
                         std::size_t& sent) noexcept {
  // Windows has no SIGPIPE; APR's send reports a closed peer as an error.
  apr_size_t length = size;
  const apr_status_t status = apr_socket_send(socket, static_cast<const char*>(data), &length);
  sent = length;
  return makeAprError(status);
}

std::error_code pendingConnectResult(apr_socket_t* socket) noexcept {
  apr_os_sock_t handle;
  if (apr_status_t status = apr_os_sock_get(&handle, socket); status != APR_SUCCESS) return makeAprError(status);
  int error = 0;
  int length = sizeof error;
  if (::getsockopt(handle, SOL_SOCKET, SO_ERROR, reinterpret_cast<char*>(&error), &length) != 0)
    return makeAprError(APR_FROM_OS_ERROR(WSAGetLastError()));
  return makeAprError(error == 0 ? APR_SUCCESS : APR_FROM_OS_ERROR(error));
}

// Windows binds over TIME_WAIT connections by default; its SO_REUSEADDR
// would let another socket bind the port a live listener holds, which
// SO_EXCLUSIVEADDRUSE forbids.
apr_status_t setListenAddressOptions(apr_socket_t* socket) noexcept {
  apr_os_sock_t handle;
  if (apr_status_t status = apr_os_sock_get(&handle, socket); status != APR_SUCCESS) return status;
  BOOL on = TRUE;
  if (::setsockopt(handle, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, reinterpret_cast<const char*>(&on), sizeof on) != 0)
    return APR_FROM_OS_ERROR(WSAGetLastError());
  return APR_SUCCESS;
}

}  // namespace evchan::detail
