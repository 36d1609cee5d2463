// SPDX-License-Identifier: Apache-2.0
// openAfterLeaseBreak() on POSIX hosts without Linux's file leases: a
// non-blocking open of a regular file has no lease break to wait for, so
// its EAGAIN stands.
#include "apr/file_state.h"

namespace evchan::detail {

apr_status_t openAfterLeaseBreak(apr_file_t**, const std::string&, apr_int32_t, apr_status_t refused,
                                 apr_pool_t*) noexcept {
  return refused;
}

}  // namespace evchan::detail
