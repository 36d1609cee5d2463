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
  // POLLPRI for a connect only: Windows' select() reports a failed one as
  // an exception.  For a write it would be urgent data from the peer, there
  // until read, and every poll would return at once.
  entries[0].reqevents = readiness == Readiness::Readable    ? APR_POLLIN
                         : readiness == Readiness::Connected ? (APR_POLLOUT | APR_POLLPRI)
                                                             : APR_POLLOUT;
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
    // Whole milliseconds, rounded up and at most INT_MAX of them: that is
    // what apr_poll() hands poll(), truncating (a wait shorter than 1 ms
    // would poll without sleeping until the deadline) and overflowing.
    const int timeoutMs = timeoutMilliseconds(deadline, now);
    const apr_interval_time_t timeoutUs = timeoutMs < 0 ? -1 : apr_interval_time_t{timeoutMs} * 1000;
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
