// SPDX-License-Identifier: Apache-2.0
// waitReady() for the portable APR layer (apr-only builds, Windows).
#include <apr_poll.h>

#include <evchan/error.h>

#include "apr/socket_io.h"

namespace evchan::detail {

std::error_code waitReady(apr_socket_t* socket, Readiness readiness, Deadline deadline) noexcept {
  apr_pollfd_t entry = {};
  entry.desc_type = APR_POLL_SOCKET;
  entry.desc.s = socket;
  // POLLPRI too: Windows' select() reports a failed connect as an exception.
  entry.reqevents = readiness == Readiness::Readable ? APR_POLLIN : (APR_POLLOUT | APR_POLLPRI);
  for (;;) {
    const Deadline now = Clock::now();
    if (now >= deadline) return makeAprError(APR_TIMEUP);
    apr_interval_time_t timeoutUs = -1;
    if (deadline != kNoDeadline) {
      timeoutUs = std::chrono::ceil<std::chrono::microseconds>(deadline - now).count();
    }
    apr_int32_t signalled = 0;
    const apr_status_t status = apr_poll(&entry, 1, &signalled, timeoutUs);
    if (status == APR_SUCCESS && signalled > 0) return {};
    if (status != APR_SUCCESS && !APR_STATUS_IS_TIMEUP(status) && !APR_STATUS_IS_EINTR(status))
      return makeAprError(status);
  }
}

}  // namespace evchan::detail
