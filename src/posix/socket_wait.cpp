// SPDX-License-Identifier: Apache-2.0
// waitReady() for the native POSIX layer: poll(2) on the descriptor.
#include <poll.h>

#include <cerrno>
#include <climits>

#include <apr_portable.h>

#include <evchan/error.h>

#include "apr/socket_io.h"

namespace evchan::detail {

std::error_code waitReady(apr_socket_t* socket, Readiness readiness, Deadline deadline, apr_socket_t* wake,
                          bool& woken) noexcept {
  woken = false;
  struct pollfd entries[2] = {};
  if (apr_status_t status = apr_os_sock_get(&entries[0].fd, socket); status != APR_SUCCESS)
    return makeAprError(status);
  entries[0].events = readiness == Readiness::Readable ? POLLIN : POLLOUT;  // a connect ends in POLLOUT here
  nfds_t count = 1;
  if (wake != nullptr) {
    if (apr_status_t status = apr_os_sock_get(&entries[1].fd, wake); status != APR_SUCCESS)
      return makeAprError(status);
    entries[1].events = POLLIN;
    count = 2;
  }
  for (;;) {
    const Deadline now = Clock::now();
    if (now >= deadline) return makeAprError(APR_TIMEUP);
    const int ready = poll(entries, count, timeoutMilliseconds(deadline, now));
    if (ready > 0) {
      woken = entries[0].revents == 0;
      return {};
    }
    if (ready < 0 && errno != EINTR) return makeAprError(errno);
  }
}

std::error_code waitReady(apr_socket_t* socket, Readiness readiness, Deadline deadline) noexcept {
  bool woken = false;
  return waitReady(socket, readiness, deadline, nullptr, woken);
}

}  // namespace evchan::detail
