// SPDX-License-Identifier: Apache-2.0
// Internal: a File's second handle, opened for overlapped IO on a
// completion port (the IOCP backend's file operations).
#ifndef EVCHAN_SRC_WIN32_OVERLAPPED_FILE_H
#define EVCHAN_SRC_WIN32_OVERLAPPED_FILE_H

#include "apr/file_state.h"

namespace evchan::detail {

/// The file's overlapped handle, associated with `port`: made on the
/// first call (ReOpenFile with FILE_FLAG_OVERLAPPED, the access of the
/// APR handle) and kept in file.backendHandle until the file closes.
/// Null when Windows refuses either step, then and on every later call:
/// the file's events run on a worker.  Call it counted in file.calls.
HANDLE overlappedHandle(FileState& file, HANDLE port) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_WIN32_OVERLAPPED_FILE_H
