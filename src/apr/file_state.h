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
/// itself in `calls`, then reads `closed`; close() sets `closed`, then
/// waits for `calls` to be zero (both sequentially consistent, so one of
/// the two sees the other).
struct FileState {
  PoolPtr pool;
  apr_file_t* file = nullptr;
  apr_os_file_t native{};
  std::string path;
  std::atomic<unsigned> calls{0};
  std::atomic<bool> closed{false};        // close() began: no new call, no next step
  std::atomic<bool> handleClosed{false};  // close() is done: the pool is gone
};

struct FileAccess {
  /// The state of an open file; null once close() began (a FileReadEvent
  /// or FileWriteEvent posted then fails with Errc::not_open).
  static FileState* state(const File& file) noexcept {
    FileState* state = file.state_.get();
    return state != nullptr && !state->closed.load(std::memory_order_acquire) ? state : nullptr;
  }
};

/// One positioned read (pread, ReadFile with an offset): `done` bytes, 0
/// at the end of the file.  Retries EINTR.  src/posix/ and src/win32/.
std::error_code readOnce(const FileState& file, std::uint64_t offset, void* buffer, std::size_t size,
                         std::size_t& done) noexcept;
/// One positioned write: `done` bytes, possibly short.
std::error_code writeOnce(const FileState& file, std::uint64_t offset, const void* buffer, std::size_t size,
                          std::size_t& done) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_FILE_STATE_H
