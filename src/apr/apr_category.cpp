// SPDX-License-Identifier: Apache-2.0
// apr_category(): APR statuses as std::error_code.
#include <apr_errno.h>
#include <evchan/error.h>

#include "apr/os_error_condition.h"

namespace evchan {
namespace {

class AprCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "apr"; }

  std::string message(int status) const override {
    char buffer[256];
    return apr_strerror(status, buffer, sizeof buffer);
  }

  std::error_condition default_error_condition(int status) const noexcept override {
    // The APR_STATUS_IS_* tests know each platform's spellings (errno on
    // POSIX, WSA codes on Windows).
    if (APR_STATUS_IS_ECONNREFUSED(status)) return std::errc::connection_refused;
    if (APR_STATUS_IS_ECONNRESET(status)) return std::errc::connection_reset;
    if (APR_STATUS_IS_ECONNABORTED(status)) return std::errc::connection_aborted;
    if (APR_STATUS_IS_TIMEUP(status) || APR_STATUS_IS_ETIMEDOUT(status)) return std::errc::timed_out;
    if (APR_STATUS_IS_EPIPE(status)) return std::errc::broken_pipe;
    if (APR_STATUS_IS_EAGAIN(status)) return std::errc::resource_unavailable_try_again;
    if (APR_STATUS_IS_EINTR(status)) return std::errc::interrupted;
    if (APR_STATUS_IS_EINPROGRESS(status)) return std::errc::operation_in_progress;
    if (APR_STATUS_IS_EHOSTUNREACH(status)) return std::errc::host_unreachable;
    if (APR_STATUS_IS_ENETUNREACH(status)) return std::errc::network_unreachable;
    if (APR_STATUS_IS_EBADF(status)) return std::errc::bad_file_descriptor;
    if (APR_STATUS_IS_EINVAL(status)) return std::errc::invalid_argument;
    if (APR_STATUS_IS_ENOMEM(status)) return std::errc::not_enough_memory;
    if (APR_STATUS_IS_EMFILE(status)) return std::errc::too_many_files_open;
    if (APR_STATUS_IS_ENFILE(status)) return std::errc::too_many_files_open_in_system;
    if (APR_STATUS_IS_EACCES(status)) return std::errc::permission_denied;
    if (APR_STATUS_IS_ENOENT(status)) return std::errc::no_such_file_or_directory;
    if (APR_STATUS_IS_EEXIST(status)) return std::errc::file_exists;
    if (APR_STATUS_IS_ENOTDIR(status)) return std::errc::not_a_directory;
    if (APR_STATUS_IS_ENOSPC(status)) return std::errc::no_space_on_device;
    if (APR_STATUS_IS_EAFNOSUPPORT(status)) return std::errc::address_family_not_supported;
    if (APR_STATUS_IS_ENOTIMPL(status)) return std::errc::function_not_supported;
    if (std::error_condition os = detail::osErrorCondition(status)) return os;
    // Below APR_OS_START_ERROR a status is the C library's errno value
    // (EADDRINUSE, ENOTCONN, ...), which generic_category describes.
    if (status > 0 && status < APR_OS_START_ERROR) return std::error_condition(status, std::generic_category());
    return std::error_condition(status, *this);
  }
};

}  // namespace

const std::error_category& apr_category() noexcept {
  // Never destroyed: the tasks of a channel that static destruction tears
  // down (or that end after main() returned) still make and describe codes.
  static const AprCategory* const category = new AprCategory;
  return *category;
}

std::error_code makeAprError(int aprStatus) noexcept {
  if (aprStatus == APR_SUCCESS) return {};
  return std::error_code(aprStatus, apr_category());
}

}  // namespace evchan
