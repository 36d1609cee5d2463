// SPDX-License-Identifier: Apache-2.0
// Internal: the portable condition of an operating-system error status.
#ifndef EVCHAN_SRC_APR_OS_ERROR_CONDITION_H
#define EVCHAN_SRC_APR_OS_ERROR_CONDITION_H

#include <system_error>

#include <apr_errno.h>

namespace evchan::detail {

/// The std::errc condition of an APR status that carries an operating
/// system error APR has no APR_STATUS_IS_* test for (on Windows a Winsock
/// or Win32 code such as WSAEADDRINUSE); an empty condition when there is
/// none.  Statuses below APR_OS_START_ERROR (C library errno values) are
/// handled by the caller on every host.  Defined per host (src/posix/,
/// src/win32/).
std::error_condition osErrorCondition(apr_status_t status) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_OS_ERROR_CONDITION_H
