// SPDX-License-Identifier: Apache-2.0
// receiveDatagram() and sendDatagram() on Windows hosts: recvfrom() reports
// a datagram that did not fit as WSAEMSGSIZE (the buffer then holds its
// first bytes), and an ICMP port unreachable as WSAECONNRESET.
// APR's headers come first: apr.h includes <windows.h> and Winsock itself.
#include <apr_portable.h>

#include <winsock2.h>

#include <algorithm>
#include <climits>

#include <evchan/error.h>

#include "apr/datagram_io.h"

namespace evchan::detail {

std::error_code receiveDatagram(apr_socket_t* socket, void* buffer, std::size_t size, apr_sockaddr_t* from,
                                std::size_t& received) noexcept {
  received = 0;
  apr_os_sock_t handle;
  if (apr_status_t status = apr_os_sock_get(&handle, socket); status != APR_SUCCESS) return makeAprError(status);
  const int length = static_cast<int>(std::min<std::size_t>(size, INT_MAX));
  int fromLength = from != nullptr ? static_cast<int>(sizeof from->sa) : 0;
  sockaddr* name = from != nullptr ? reinterpret_cast<sockaddr*>(&from->sa) : nullptr;
  const int n = ::recvfrom(handle, static_cast<char*>(buffer), length, 0, name, from != nullptr ? &fromLength : nullptr);
  if (from != nullptr) from->salen = fromLength;
  if (n != SOCKET_ERROR) {
    received = static_cast<std::size_t>(n);
    return {};
  }
  const int error = WSAGetLastError();
  if (error == WSAEMSGSIZE) {
    received = static_cast<std::size_t>(length);
    return std::make_error_code(std::errc::message_size);
  }
  // Windows names the ICMP port unreachable a reset; POSIX a refusal.
  if (error == WSAECONNRESET) return std::make_error_code(std::errc::connection_refused);
  return makeAprError(APR_FROM_OS_ERROR(error));
}

std::error_code sendDatagram(apr_socket_t* socket, const void* data, std::size_t size, const apr_sockaddr_t* to,
                             std::size_t& sent) noexcept {
  sent = 0;
  apr_os_sock_t handle;
  if (apr_status_t status = apr_os_sock_get(&handle, socket); status != APR_SUCCESS) return makeAprError(status);
  if (size > INT_MAX) return std::make_error_code(std::errc::message_size);
  const char* bytes = static_cast<const char*>(data);
  const int n = to != nullptr ? ::sendto(handle, bytes, static_cast<int>(size), 0,
                                         reinterpret_cast<const sockaddr*>(&to->sa), to->salen)
                              : ::send(handle, bytes, static_cast<int>(size), 0);
  if (n == SOCKET_ERROR) {
    const int error = WSAGetLastError();
    if (error == WSAECONNRESET) return std::make_error_code(std::errc::connection_refused);
    return makeAprError(APR_FROM_OS_ERROR(error));
  }
  sent = static_cast<std::size_t>(n);
  return {};
}

}  // namespace evchan::detail
