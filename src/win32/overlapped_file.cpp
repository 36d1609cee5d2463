// SPDX-License-Identifier: Apache-2.0
// A File's overlapped handle.  APR opens a file for overlapped IO only
// with APR_FOPEN_XTHREAD, and then runs its own reads and writes on it as
// overlapped calls that wait on an event of the apr_file_t; once the
// handle is associated with a completion port, each of those would also
// queue a completion that nobody submitted.  So the APR handle stays
// synchronous (File's blocking calls, apr_pollset's workers and any APR
// call use it unchanged) and the IOCP backend reopens the file beside it.
// APR's headers first: they include <winsock2.h> before <windows.h>.
#include "win32/overlapped_file.h"

#include <windows.h>

namespace evchan::detail {

HANDLE overlappedHandle(FileState& file, HANDLE port) noexcept {
  std::uintptr_t current = file.backendHandle.load(std::memory_order_acquire);
  if (current == kNoBackendHandle) return nullptr;
  if (current != 0) return reinterpret_cast<HANDLE>(current);
  const apr_int32_t flags = apr_file_flags_get(file.file);
  DWORD access = 0;
  if (flags & APR_FOPEN_READ) access |= GENERIC_READ;
  if (flags & APR_FOPEN_WRITE) access |= GENERIC_WRITE;
  // The share mode APR opens with.  Refused, e.g., for a file deleted
  // while open (Windows), or renamed (Wine reopens by name).
  HANDLE reopened = ReOpenFile(file.native, access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                               FILE_FLAG_OVERLAPPED);
  std::uintptr_t made = kNoBackendHandle;
  if (reopened != INVALID_HANDLE_VALUE) {
    if (CreateIoCompletionPort(reopened, port, 0, 0) != nullptr) {
      made = reinterpret_cast<std::uintptr_t>(reopened);
    } else {
      CloseHandle(reopened);
    }
  }
  // Two first events at once: one handle wins, the other is closed.
  if (!file.backendHandle.compare_exchange_strong(current, made, std::memory_order_acq_rel)) {
    if (made != kNoBackendHandle) CloseHandle(reinterpret_cast<HANDLE>(made));
    made = current;
  }
  return made == kNoBackendHandle ? nullptr : reinterpret_cast<HANDLE>(made);
}

void FileState::closeBackendHandle(FileState& file) noexcept {
  const std::uintptr_t handle = file.backendHandle.exchange(kNoBackendHandle, std::memory_order_acq_rel);
  if (handle != 0 && handle != kNoBackendHandle) CloseHandle(reinterpret_cast<HANDLE>(handle));
}

}  // namespace evchan::detail
