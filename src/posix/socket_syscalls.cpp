// SPDX-License-Identifier: Apache-2.0
// receiveSome(), atUrgentMark(), receiveSomeSignalsBlocked(),
// socketPassesDescriptors(), sendSome(), sendGather(),
// pendingConnectResult(), setListenAddressOptions() and setResetOnClose()
// on POSIX hosts.
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>

#include <apr_portable.h>

#include <evchan/error.h>

#include "apr/descriptor_passing.h"
#include "apr/socket_io.h"

namespace evchan::detail {

namespace {

std::error_code sendSomeOn(apr_os_sock_t fd, const void* data, std::size_t size, std::size_t& sent) noexcept {
  sent = 0;
  // apr_socket_send() uses write(2), which raises SIGPIPE on a connection
  // the peer has closed; MSG_NOSIGNAL turns that into EPIPE for this call
  // only, without touching the process's signal dispositions.
  ssize_t n;
  do {
    n = ::send(fd, data, size, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return makeAprError(errno);
  sent = static_cast<std::size_t>(n);
  return {};
}

std::error_code nativeOf(apr_socket_t* socket, apr_os_sock_t& fd) noexcept {
  return makeAprError(apr_os_sock_get(&fd, socket));
}

}  // namespace

std::error_code receiveSome(apr_os_sock_t fd, bool passesDescriptors, void* data, std::size_t size,
                            std::size_t& received, bool& cutShort) noexcept {
  received = 0;
  cutShort = false;
  ssize_t n;
  if (!passesDescriptors) {
    do {
      n = ::recv(fd, data, size, 0);
    } while (n < 0 && errno == EINTR);
  } else {
    // recvmsg(2) for its flags: a peer's descriptors end the read
    // (MSG_CTRUNC) with more bytes possibly queued.
    iovec piece{data, size};
    msghdr message{};
    message.msg_iov = &piece;
    message.msg_iovlen = 1;
    do {
      n = ::recvmsg(fd, &message, 0);
    } while (n < 0 && errno == EINTR);
    cutShort = n > 0 && (message.msg_flags & MSG_CTRUNC) != 0;
  }
  if (n < 0) return makeAprError(errno);
  if (n == 0) return Errc::end_of_stream;
  received = static_cast<std::size_t>(n);
  return {};
}

bool atUrgentMark(apr_os_sock_t fd) noexcept {
  int atMark = 0;
  return ::ioctl(fd, SIOCATMARK, &atMark) == 0 && atMark != 0;
}

std::error_code receiveSomeSignalsBlocked(apr_os_sock_t fd, bool passesDescriptors, void* data, std::size_t size,
                                          std::size_t& received, bool& cutShort) noexcept {
  sigset_t all;
  sigset_t saved;
  sigfillset(&all);
  if (::pthread_sigmask(SIG_BLOCK, &all, &saved) != 0) {
    return receiveSome(fd, passesDescriptors, data, size, received, cutShort);
  }
  const std::error_code ec = receiveSome(fd, passesDescriptors, data, size, received, cutShort);
  ::pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  return ec;
}

bool socketPassesDescriptors(apr_os_sock_t fd) noexcept {
  // Only an IP socket is known not to: anything else (AF_UNIX, or a family
  // an unnamed socket reports as unspecified on some hosts) keeps recvmsg.
  sockaddr_storage local{};
  socklen_t length = sizeof local;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0) return true;
  return local.ss_family != AF_INET && local.ss_family != AF_INET6;
}

std::error_code sendSome(apr_socket_t* socket, const void* data, std::size_t size,
                         std::size_t& sent) noexcept {
  sent = 0;
  apr_os_sock_t fd;
  if (std::error_code ec = nativeOf(socket, fd)) return ec;
  return sendSomeOn(fd, data, size, sent);
}

// A ConstBuffer array is handed to the kernel as the iovec array it is
// laid out like (the kernel reads it; no C++ code reads it as iovec).
static_assert(sizeof(ConstBuffer) == sizeof(iovec) && alignof(ConstBuffer) == alignof(iovec) &&
                  offsetof(ConstBuffer, data) == offsetof(iovec, iov_base) &&
                  offsetof(ConstBuffer, size) == offsetof(iovec, iov_len),
              "ConstBuffer must have the layout of struct iovec");

std::error_code sendGather(apr_os_sock_t fd, const ConstBuffer* buffers, std::size_t count, std::size_t& sent,
                           std::size_t* offered) noexcept {
  while (count > 0 && buffers->size == 0) {
    ++buffers;
    --count;
  }
  sent = 0;
  // More than IOV_MAX pieces is EMSGSIZE: the rest goes in a later call.
  const std::size_t used = std::min<std::size_t>(count, IOV_MAX);
  if (offered != nullptr) {
    *offered = 0;
    for (std::size_t i = 0; i < used; ++i) *offered += buffers[i].size;
  }
  if (count == 0) return {};
  if (count == 1) return sendSomeOn(fd, buffers->data, buffers->size, sent);  // send(2) is cheaper
  msghdr message{};
  message.msg_iov = const_cast<iovec*>(reinterpret_cast<const iovec*>(buffers));
  message.msg_iovlen = static_cast<decltype(message.msg_iovlen)>(used);
  // Never writev(2): like write(2) it raises SIGPIPE on a closed connection.
  ssize_t n;
  do {
    n = ::sendmsg(fd, &message, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return makeAprError(errno);
  sent = static_cast<std::size_t>(n);
  return {};
}

std::error_code sendGather(apr_socket_t* socket, const ConstBuffer* buffers, std::size_t count,
                           std::size_t& sent, std::size_t* offered) noexcept {
  sent = 0;
  if (offered != nullptr) *offered = 0;
  apr_os_sock_t fd;
  if (std::error_code ec = nativeOf(socket, fd)) return ec;
  return sendGather(fd, buffers, count, sent, offered);
}

std::error_code pendingConnectResult(apr_socket_t* socket) noexcept {
  apr_os_sock_t fd;
  if (apr_status_t status = apr_os_sock_get(&fd, socket); status != APR_SUCCESS) return makeAprError(status);
  int error = 0;
  socklen_t length = sizeof error;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) < 0) return makeAprError(errno);
  return makeAprError(error);
}

// TIME_WAIT connections do not block a new bind; a live listener does.
apr_status_t setListenAddressOptions(apr_socket_t* socket) noexcept {
  return apr_socket_opt_set(socket, APR_SO_REUSEADDR, 1);
}

apr_status_t setResetOnClose(apr_socket_t* socket) noexcept {
  apr_os_sock_t fd;
  if (apr_status_t status = apr_os_sock_get(&fd, socket); status != APR_SUCCESS) return status;
  const linger abortive = {1, 0};
  if (::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive) != 0) return APR_FROM_OS_ERROR(errno);
  return APR_SUCCESS;
}

}  // namespace evchan::detail
