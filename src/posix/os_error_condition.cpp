// SPDX-License-Identifier: Apache-2.0
// osErrorCondition() on POSIX hosts: APR passes an OS error through as its
// errno value, which the caller's errno range already covers.
#include "apr/os_error_condition.h"

namespace evchan::detail {

std::error_condition osErrorCondition(apr_status_t) noexcept { return {}; }

}  // namespace evchan::detail
