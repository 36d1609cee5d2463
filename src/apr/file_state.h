// SPDX-License-Identifier: Apache-2.0
// Internal: what a File owns, and the positioned IO each platform provides.
#ifndef EVCHAN_SRC_APR_FILE_STATE_H
#define EVCHAN_SRC_APR_FILE_STATE_H

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>

#include <apr_file_io.h>
#include <apr_portable.h>

#include <evchan/file.h>

#include "apr/apr_runtime.h"

namespace evchan::detail {

/// One open file: its own pool (destroying the pool closes the file), the
/// APR file, its native handle for positioned IO, and its path for errors.
/// File::close() keeps the state (only the destructor frees it) and
/// closes the handle once the calls under way have left: a call counts
/// itself in `calls`, then reads `closed` (enterFile()); close() sets
/// `closed`, then waits for `calls` to be zero (both sequentially
/// consistent, so one of the two sees the other).  A file event a worker
/// runs, or a backend has in the kernel, counts as a call too, until the
/// kernel is done with its buffer.
struct FileState {
  ~FileState() { closeBackendHandle(*this); }  // before the pool closes the file

  PoolPtr pool;
  apr_file_t* file = nullptr;
  apr_os_file_t native{};
  std::string path;
  std::atomic<unsigned> calls{0};
  std::atomic<bool> closed{false};        // close() began: no new call, no next step
  std::atomic<bool> handleClosed{false};  // close() is done: the pool is gone
  /// A backend's own handle to the file, made for its first event there
  /// (IOCP: the file reopened for overlapped IO); 0 until then,
  /// kNoBackendHandle when it could not be made (the file's events then
  /// run on a worker).  Closed with the file.
  std::atomic<std::uintptr_t> backendHandle{0};

  /// Closes backendHandle, if any, once no call is left (src/posix/file_io.cpp:
  /// nothing to close; src/win32/overlapped_file.cpp).
  static void closeBackendHandle(FileState& file) noexcept;
};

constexpr std::uintptr_t kNoBackendHandle = 1;

/// Counts a call (or an operation) on `file` against close(): false,
/// counting nothing, once close() has begun.
inline bool enterFile(FileState& file) noexcept {
  file.calls.fetch_add(1, std::memory_order_seq_cst);
  if (!file.closed.load(std::memory_order_seq_cst)) return true;
  file.calls.fetch_sub(1, std::memory_order_release);
  return false;
}
inline void leaveFile(FileState& file) noexcept { file.calls.fetch_sub(1, std::memory_order_release); }

struct FileAccess {
  /// The state of an open file; null once close() began (a FileReadEvent
  /// or FileWriteEvent posted then fails with Errc::not_open).
  static FileState* state(const File& file) noexcept {
    FileState* state = file.state_.get();
    return state != nullptr && !state->closed.load(std::memory_order_acquire) ? state : nullptr;
  }
};

/// Whether `offset` fits off_t (and Windows' signed offsets): 2^63 and
/// above are std::errc::invalid_argument for a File's calls and for a
/// posted file event alike, whatever the size, on every backend.
inline bool fileOffsetFits(std::uint64_t offset) noexcept { return offset <= static_cast<std::uint64_t>(INT64_MAX); }

/// How much of a read of `size` bytes at `offset` (at most 2^63 - 1) lies
/// below 2^63: no byte of a file lies beyond, and pread(2), io_uring and
/// POSIX aio refuse a read reaching past it (EINVAL) where file.h promises
/// the end of the file, a short or empty read.
inline std::size_t readableBelowOffTEnd(std::uint64_t offset, std::size_t size) noexcept {
  const std::uint64_t room = static_cast<std::uint64_t>(INT64_MAX) - offset;
  return room < size ? static_cast<std::size_t>(room) : size;
}

/// The APR flags with which File::open() opens so that the open itself
/// never waits: O_NONBLOCK on POSIX, where a named pipe put at the path
/// after open()'s type check would wait in open(2) for its other end;
/// none on Windows.  src/posix/ and src/win32/.
apr_int32_t openFlagsThatNeverWait() noexcept;
/// Undoes openFlagsThatNeverWait() on a file found to be one File keeps,
/// so that its reads and writes wait for the disk as they always have.
std::error_code restoreBlockingIo(const FileState& file) noexcept;
/// After the open with openFlagsThatNeverWait() failed with `refused`
/// (EAGAIN): where that is a lease another process holds on a regular
/// file (Linux, F_SETLEASE), opens the file again with `flags` (which lack
/// openFlagsThatNeverWait(), APR_FOPEN_CREATE and APR_FOPEN_EXCL) as
/// open(2) would, waiting for the lease break (up to
/// /proc/sys/fs/lease-break-time), yet never for a named pipe put at the
/// path meanwhile: what the path names is found without opening it and
/// opened only if it is a regular file.  Returns that open's status, or
/// `refused` where this cannot be done (another host, no /proc, not a
/// regular file).  Blocks: call it inside evchan::blocking().
/// src/linux/file_lease_open.cpp, src/posix/file_lease_open_none.cpp,
/// src/win32/file_io.cpp.
apr_status_t openAfterLeaseBreak(apr_file_t** file, const std::string& path, apr_int32_t flags,
                                 apr_status_t refused, apr_pool_t* pool) noexcept;

/// The file's size in `size`: a block device's is the device's, where
/// fstat(2) says 0.  src/posix/ and src/win32/.
std::error_code fileSize(const FileState& file, std::uint64_t& size) noexcept;

/// One positioned read (pread, ReadFile with an offset): `done` bytes, 0
/// at the end of the file.  Retries EINTR.  src/posix/ and src/win32/.
std::error_code readOnce(const FileState& file, std::uint64_t offset, void* buffer, std::size_t size,
                         std::size_t& done) noexcept;
/// One positioned write: `done` bytes, possibly short.
std::error_code writeOnce(const FileState& file, std::uint64_t offset, const void* buffer, std::size_t size,
                          std::size_t& done) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_FILE_STATE_H
