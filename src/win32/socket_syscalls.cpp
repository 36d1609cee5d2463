// SPDX-License-Identifier: Apache-2.0
// receiveSome(), atUrgentMark(), receiveSomeSignalsBlocked(),
// socketPassesDescriptors(), sendSome(), sendGather(),
// pendingConnectResult() and setListenAddressOptions() on Windows hosts.
// APR's headers come first: apr.h includes <windows.h> and the socket
// headers (<ws2tcpip.h> among them) only when <windows.h> is not in yet.
#include <apr_portable.h>

#include <winsock2.h>

#include <algorithm>
#include <climits>

#include <evchan/error.h>

#include "apr/descriptor_passing.h"
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

// WSABUF is { ULONG len; CHAR* buf; }, not a ConstBuffer's layout: the
// descriptors are copied, this many at a time (the rest is for a later
// call), into an array on the stack.
constexpr std::size_t kPiecesPerSend = 64;

std::error_code sendGather(apr_os_sock_t handle, const ConstBuffer* buffers, std::size_t count, std::size_t& sent,
                           std::size_t* offered) noexcept {
  while (count > 0 && buffers->size == 0) {
    ++buffers;
    --count;
  }
  sent = 0;
  if (offered != nullptr) *offered = 0;
  if (count == 0) return {};
  WSABUF pieces[kPiecesPerSend];
  DWORD used = 0;
  for (std::size_t i = 0; i < count && used < kPiecesPerSend; ++i) {
    pieces[used].buf = static_cast<CHAR*>(const_cast<void*>(buffers[i].data));
    pieces[used].len = static_cast<ULONG>(std::min<std::size_t>(buffers[i].size, ULONG_MAX));
    ++used;
    if (buffers[i].size > ULONG_MAX) break;  // the rest of this piece first, in a later call
  }
  if (offered != nullptr) {
    for (DWORD i = 0; i < used; ++i) *offered += pieces[i].len;
  }
  // Without an OVERLAPPED, WSASend on APR's non-blocking socket returns at
  // once; Windows has no SIGPIPE.
  DWORD bytes = 0;
  if (::WSASend(handle, pieces, used, &bytes, 0, nullptr, nullptr) != 0)
    return makeAprError(APR_FROM_OS_ERROR(WSAGetLastError()));
  sent = bytes;
  return {};
}

std::error_code sendGather(apr_socket_t* socket, const ConstBuffer* buffers, std::size_t count,
                           std::size_t& sent, std::size_t* offered) noexcept {
  while (count > 0 && buffers->size == 0) {
    ++buffers;
    --count;
  }
  sent = 0;
  if (offered != nullptr) *offered = count > 0 ? buffers->size : 0;
  if (count == 0) return {};
  if (count == 1) return sendSome(socket, buffers->data, buffers->size, sent);
  apr_os_sock_t handle;
  if (apr_status_t status = apr_os_sock_get(&handle, socket); status != APR_SUCCESS) return makeAprError(status);
  return sendGather(handle, buffers, count, sent, offered);
}

std::error_code receiveSome(apr_os_sock_t handle, bool, void* data, std::size_t size, std::size_t& received,
                            bool& cutShort) noexcept {
  received = 0;
  cutShort = false;  // no descriptors are passed here
  const int n = ::recv(handle, static_cast<char*>(data), static_cast<int>(std::min<std::size_t>(size, INT_MAX)), 0);
  if (n == SOCKET_ERROR) return makeAprError(APR_FROM_OS_ERROR(WSAGetLastError()));
  if (n == 0) return Errc::end_of_stream;
  received = static_cast<std::size_t>(n);
  return {};
}

// Windows has no signals to fail a recv() at an urgent mark spuriously:
// a would-block there is a real one.
bool atUrgentMark(apr_os_sock_t) noexcept { return false; }

std::error_code receiveSomeSignalsBlocked(apr_os_sock_t handle, bool passesDescriptors, void* data, std::size_t size,
                                          std::size_t& received, bool& cutShort) noexcept {
  return receiveSome(handle, passesDescriptors, data, size, received, cutShort);
}

// Windows passes no descriptors over sockets (AF_UNIX there has no SCM_RIGHTS).
bool socketPassesDescriptors(apr_os_sock_t) noexcept { return false; }

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

apr_status_t setResetOnClose(apr_socket_t* socket) noexcept {
  apr_os_sock_t handle;
  if (apr_status_t status = apr_os_sock_get(&handle, socket); status != APR_SUCCESS) return status;
  const LINGER abortive = {1, 0};
  if (::setsockopt(handle, SOL_SOCKET, SO_LINGER, reinterpret_cast<const char*>(&abortive), sizeof abortive) != 0)
    return APR_FROM_OS_ERROR(WSAGetLastError());
  return APR_SUCCESS;
}

}  // namespace evchan::detail
