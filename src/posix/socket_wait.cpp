// SPDX-License-Identifier: Apache-2.0
// waitReady() for the native POSIX layer: poll(2) on the descriptor.
#include <poll.h>

#include <cerrno>
#include <climits>

#include <apr_portable.h>

#include <evchan/error.h>

#include "apr/socket_io.h"

namespace evchan::detail {
std::error_code waitReady(apr_socket_t* socket, Readiness readiness, Deadline deadline) noexcept {
  apr_os_sock_t fd;
  if (apr_status_t status = apr_os_sock_get(&fd, socket); status != APR_SUCCESS) return makeAprError(status);
  struct pollfd entry = {};
  entry.fd = fd;
  entry.events = readiness == Readiness::Readable ? POLLIN : POLLOUT;
  for (;;) {
    const Deadline now = Clock::now();
    if (now >= deadline) return makeAprError(APR_TIMEUP);
    const int ready = poll(&entry, 1, timeoutMilliseconds(deadline, now));
    if (ready > 0) return {};
    if (ready < 0 && errno != EINTR) return makeAprError(errno);
  }
}

}  // namespace evchan::detail
