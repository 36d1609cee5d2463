// sendSome(), pendingConnectResult() and setListenAddressOptions() on POSIX hosts.
#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>

#include <apr_portable.h>

#include <evchan/error.h>

#include "apr/socket_io.h"

namespace evchan::detail {

std::error_code sendSome(apr_socket_t* socket, const void* data, std::size_t size,
                         std::size_t& sent) noexcept {
  sent = 0;
  apr_os_sock_t fd;
  if (apr_status_t status = apr_os_sock_get(&fd, socket); status != APR_SUCCESS) return makeAprError(status);
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

}  // namespace evchan::detail
