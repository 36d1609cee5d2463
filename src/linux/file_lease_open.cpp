// SPDX-License-Identifier: Apache-2.0
// openAfterLeaseBreak() on Linux: File::open()'s non-blocking open of a
// regular file fails with EWOULDBLOCK while another process holds a lease
// on it (F_SETLEASE: Samba, NFS servers), where open(2) would start the
// lease break and wait for the holder.  The file is found once through an
// O_PATH descriptor, which opens nothing (no lease break, no wait for a
// pipe's other end), and opened blocking through /proc/self/fd only when
// that descriptor names a regular file: a pipe renamed onto the path
// meanwhile is never what that open reaches.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "apr/file_state.h"

namespace evchan::detail {

apr_status_t openAfterLeaseBreak(apr_file_t** file, const std::string& path, apr_int32_t flags,
                                 apr_status_t refused, apr_pool_t* pool) noexcept {
  // O_NONBLOCK too: a kernel too old for O_PATH ignores it and opens for
  // reading, which then must not wait for a pipe either.
  const int found = ::open(path.c_str(), O_PATH | O_NONBLOCK | O_CLOEXEC);
  if (found < 0) return refused;
  apr_status_t status = refused;
  struct stat info;
  if (::fstat(found, &info) == 0 && S_ISREG(info.st_mode)) {
    // The magic link opens the file `found` holds, whatever the path names
    // by now; it checks the caller's permissions as an open of the path does.
    char same[48];
    std::snprintf(same, sizeof same, "/proc/self/fd/%d", found);
    do {
      status = apr_file_open(file, same, flags, APR_FPROT_OS_DEFAULT, pool);
    } while (APR_STATUS_IS_EINTR(status));  // a signal without SA_RESTART during the wait
    // ENOENT: no /proc mounted here (the descriptor is open, its file is
    // there); the first open's error is the one that explains the failure.
    if (APR_STATUS_IS_ENOENT(status)) status = refused;
  }
  ::close(found);
  return status;
}

}  // namespace evchan::detail
