// SPDX-License-Identifier: Apache-2.0
// osErrorCondition() on Windows hosts: APR reports Winsock and Win32
// errors as APR_OS_START_SYSERR + the code.
#include "apr/os_error_condition.h"

// APR's headers come first: apr.h includes <windows.h> and Winsock itself.
#include <apr.h>

#include <winsock2.h>

namespace evchan::detail {
namespace {

struct OsErrorMapping {
  int code;
  std::errc condition;
};

// The socket errors APR_STATUS_IS_* does not cover.
constexpr OsErrorMapping kMappings[] = {
    {WSAEADDRINUSE, std::errc::address_in_use},
    {WSAEADDRNOTAVAIL, std::errc::address_not_available},
    {WSAENOTCONN, std::errc::not_connected},
    {WSAEISCONN, std::errc::already_connected},
    {WSAEALREADY, std::errc::connection_already_in_progress},
    {WSAEACCES, std::errc::permission_denied},
    {ERROR_ACCESS_DENIED, std::errc::permission_denied},
    {WSAENOTSOCK, std::errc::not_a_socket},
    {WSAEMSGSIZE, std::errc::message_size},
    {WSAENOBUFS, std::errc::no_buffer_space},
    {WSAEDESTADDRREQ, std::errc::destination_address_required},
    {WSAEPROTONOSUPPORT, std::errc::protocol_not_supported},
    {WSAEOPNOTSUPP, std::errc::operation_not_supported},
    {WSAENETDOWN, std::errc::network_down},
    {WSAENETRESET, std::errc::network_reset},
    {WSAEFAULT, std::errc::bad_address},
    // Out of sockets: what socket() and accept() say where POSIX says
    // EMFILE (APR_STATUS_IS_EMFILE knows only ERROR_TOO_MANY_OPEN_FILES).
    {WSAEMFILE, std::errc::too_many_files_open},
    // A send after shutdown(SD_SEND): EPIPE on POSIX.
    {WSAESHUTDOWN, std::errc::broken_pipe},
};

}  // namespace

std::error_condition osErrorCondition(apr_status_t status) noexcept {
  if (status < APR_OS_START_SYSERR) return {};
  const int code = static_cast<int>(APR_TO_OS_ERROR(status));
  for (const OsErrorMapping& mapping : kMappings) {
    if (mapping.code == code) return mapping.condition;
  }
  return {};
}

}  // namespace evchan::detail
