// SPDX-License-Identifier: Apache-2.0
// Positioned file IO on Windows: ReadFile and WriteFile with the offset in
// an OVERLAPPED structure (the file is not opened for overlapped IO, so
// the call completes synchronously and leaves no shared offset behind).
// APR's headers first: they include <winsock2.h> before <windows.h>.
#include "apr/file_state.h"

#include <windows.h>

#include <algorithm>

#include <evchan/error.h>

namespace evchan::detail {
namespace {

OVERLAPPED at(std::uint64_t offset) noexcept {
  OVERLAPPED overlapped{};
  overlapped.Offset = static_cast<DWORD>(offset & 0xffffffffu);
  overlapped.OffsetHigh = static_cast<DWORD>(offset >> 32);
  return overlapped;
}

// One call moves at most a DWORD's worth.
DWORD chunk(std::size_t size) noexcept { return static_cast<DWORD>(std::min<std::size_t>(size, 0x7fffffffu)); }

}  // namespace

// No open of a file waits here for another party: Windows has no named
// pipes in a directory, and device names are refused once open.
apr_int32_t openFlagsThatNeverWait() noexcept { return 0; }
std::error_code restoreBlockingIo(const FileState&) noexcept { return {}; }
// Windows has no leases that make an open fail to wait.
apr_status_t openAfterLeaseBreak(apr_file_t**, const std::string&, apr_int32_t, apr_status_t refused,
                                 apr_pool_t*) noexcept {
  return refused;
}

std::error_code fileSize(const FileState& file, std::uint64_t& size) noexcept {
  size = 0;
  apr_finfo_t info;
  if (apr_status_t status = apr_file_info_get(&info, APR_FINFO_SIZE, file.file); status != APR_SUCCESS) {
    return makeAprError(status);
  }
  size = static_cast<std::uint64_t>(info.size);
  return {};
}

std::error_code readOnce(const FileState& file, std::uint64_t offset, void* buffer, std::size_t size,
                         std::size_t& done) noexcept {
  done = 0;
  if (!fileOffsetFits(offset)) return std::make_error_code(std::errc::invalid_argument);
  size = readableBelowOffTEnd(offset, size);
  if (size == 0) return {};  // at 2^63 - 1: beyond any file's end
  OVERLAPPED overlapped = at(offset);
  DWORD n = 0;
  if (!ReadFile(file.native, buffer, chunk(size), &n, &overlapped)) {
    const DWORD error = GetLastError();
    if (error == ERROR_HANDLE_EOF) return {};  // at or beyond the end: 0 bytes
    return makeAprError(APR_FROM_OS_ERROR(error));
  }
  done = n;
  return {};
}

std::error_code writeOnce(const FileState& file, std::uint64_t offset, const void* buffer, std::size_t size,
                          std::size_t& done) noexcept {
  done = 0;
  if (!fileOffsetFits(offset)) return std::make_error_code(std::errc::invalid_argument);
  OVERLAPPED overlapped = at(offset);
  DWORD n = 0;
  if (!WriteFile(file.native, buffer, chunk(size), &n, &overlapped)) {
    return makeAprError(APR_FROM_OS_ERROR(GetLastError()));
  }
  done = n;
  return {};
}

}  // namespace evchan::detail
