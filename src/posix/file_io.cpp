// SPDX-License-Identifier: Apache-2.0
// Positioned file IO on POSIX hosts: pread(2) and pwrite(2); opening
// without waiting; a block device's size.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <evchan/error.h>

#include "apr/file_state.h"

namespace evchan::detail {

void FileState::closeBackendHandle(FileState&) noexcept {}  // no backend opens one here

apr_int32_t openFlagsThatNeverWait() noexcept { return APR_FOPEN_NONBLOCK; }

std::error_code restoreBlockingIo(const FileState& file) noexcept {
  const int flags = ::fcntl(file.native, F_GETFL);
  if (flags < 0 || ::fcntl(file.native, F_SETFL, flags & ~O_NONBLOCK) < 0) return makeAprError(errno);
  return {};
}

// lseek(2) to the end rather than Linux's BLKGETSIZE64: it works on every
// POSIX host, and the offset it moves is one nothing reads, since all of
// File's IO is positioned.
std::error_code fileSize(const FileState& file, std::uint64_t& size) noexcept {
  size = 0;
  struct stat info;
  if (::fstat(file.native, &info) != 0) return makeAprError(errno);
  if (!S_ISBLK(info.st_mode)) {
    size = static_cast<std::uint64_t>(info.st_size);
    return {};
  }
  const off_t end = ::lseek(file.native, 0, SEEK_END);
  if (end < 0) return makeAprError(errno);
  size = static_cast<std::uint64_t>(end);
  return {};
}

std::error_code readOnce(const FileState& file, std::uint64_t offset, void* buffer, std::size_t size,
                         std::size_t& done) noexcept {
  done = 0;
  if (!fileOffsetFits(offset)) return std::make_error_code(std::errc::invalid_argument);
  size = readableBelowOffTEnd(offset, size);
  if (size == 0) return {};  // at 2^63 - 1: beyond any file's end
  ssize_t n;
  do {
    n = ::pread(file.native, buffer, size, static_cast<off_t>(offset));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return makeAprError(errno);
  done = static_cast<std::size_t>(n);
  return {};
}

std::error_code writeOnce(const FileState& file, std::uint64_t offset, const void* buffer, std::size_t size,
                          std::size_t& done) noexcept {
  done = 0;
  if (!fileOffsetFits(offset)) return std::make_error_code(std::errc::invalid_argument);
  ssize_t n;
  do {
    n = ::pwrite(file.native, buffer, size, static_cast<off_t>(offset));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return makeAprError(errno);
  done = static_cast<std::size_t>(n);
  return {};
}

}  // namespace evchan::detail
