// SPDX-License-Identifier: Apache-2.0
// waitReady() for the portable APR layer (apr-only builds, Windows).
#include <apr_poll.h>

#include <evchan/error.h>

#include "apr/socket_io.h"

namespace evchan::detail {

std::error_code waitReady(apr_socket_t* socket, Readiness readiness, Deadline deadline, apr_socket_t* wake,
                          bool& woken) noexcept {
  woken = false;
  apr_pollfd_t entries[2] = {};
  entries[0].desc_type = APR_POLL_SOCKET;
  entries[0].desc.s = socket;
  // POLLPRI too: Windows' select() reports a failed connect as an exception.
  entries[0].reqevents = readiness == Readiness::Readable ? APR_POLLIN : (APR_POLLOUT | APR_POLLPRI);
  apr_int32_t count = 1;
  if (wake != nullptr) {
    entries[1].desc_type = APR_POLL_SOCKET;
    entries[1].desc.s = wake;
    entries[1].reqevents = APR_POLLIN;
    count = 2;
  }
  for (;;) {
    const Deadline now = Clock::now();
    if (now >= deadline) return makeAprError(APR_TIMEUP);
    apr_interval_time_t timeoutUs = -1;
    if (deadline != kNoDeadline) {
      timeoutUs = std::chrono::ceil<std::chrono::microseconds>(deadline - now).count();
    }
    entries[0].rtnevents = entries[1].rtnevents = 0;
    apr_int32_t signalled = 0;
    const apr_status_t status = apr_poll(entries, count, &signalled, timeoutUs);
    if (status == APR_SUCCESS && signalled > 0) {
      woken = entries[0].rtnevents == 0;
      return {};
    }
    if (status != APR_SUCCESS && !APR_STATUS_IS_TIMEUP(status) && !APR_STATUS_IS_EINTR(status))
      return makeAprError(status);
  }
}

std::error_code waitReady(apr_socket_t* socket, Readiness readiness, Deadline deadline) noexcept {
  bool woken = false;
  return waitReady(socket, readiness, deadline, nullptr, woken);
}

}  // namespace evchan::detail
