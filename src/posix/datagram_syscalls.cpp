// SPDX-License-Identifier: Apache-2.0
// receiveDatagram() and sendDatagram() on POSIX hosts: recvmsg(2), whose
// MSG_TRUNC flag says a datagram did not fit, and sendto(2).
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cerrno>

#include <apr_portable.h>

#include <evchan/error.h>

#include "apr/datagram_io.h"

namespace evchan::detail {

std::error_code receiveDatagram(apr_socket_t* socket, void* buffer, std::size_t size, apr_sockaddr_t* from,
                                std::size_t& received) noexcept {
  received = 0;
  apr_os_sock_t fd;
  if (apr_status_t status = apr_os_sock_get(&fd, socket); status != APR_SUCCESS) return makeAprError(status);
  iovec piece{buffer, size};
  msghdr message{};
  message.msg_iov = &piece;
  message.msg_iovlen = 1;
  if (from != nullptr) {
    message.msg_name = &from->sa;
    message.msg_namelen = sizeof from->sa;
  }
  ssize_t n;
  do {
    n = ::recvmsg(fd, &message, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return makeAprError(errno);
  if (from != nullptr) from->salen = static_cast<apr_socklen_t>(message.msg_namelen);
  received = static_cast<std::size_t>(n);
  if (message.msg_flags & MSG_TRUNC) return std::make_error_code(std::errc::message_size);
  return {};
}

std::error_code sendDatagram(apr_socket_t* socket, const void* data, std::size_t size, const apr_sockaddr_t* to,
                             std::size_t& sent) noexcept {
  sent = 0;
  apr_os_sock_t fd;
  if (apr_status_t status = apr_os_sock_get(&fd, socket); status != APR_SUCCESS) return makeAprError(status);
  const sockaddr* target = to != nullptr ? reinterpret_cast<const sockaddr*>(&to->sa) : nullptr;
  const socklen_t length = to != nullptr ? static_cast<socklen_t>(to->salen) : 0;
  ssize_t n;
  do {
    n = ::sendto(fd, data, size, MSG_NOSIGNAL, target, length);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return makeAprError(errno);
  sent = static_cast<std::size_t>(n);
  return {};
}

}  // namespace evchan::detail
