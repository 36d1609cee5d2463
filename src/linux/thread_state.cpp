// SPDX-License-Identifier: Apache-2.0
// Thread states on Linux: the state letter of /proc/self/task/<tid>/stat.
#include "apr/thread_state.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace evchan::detail {

std::int64_t currentKernelThreadId() noexcept { return static_cast<std::int64_t>(::syscall(SYS_gettid)); }

KernelThreadState kernelThreadState(std::int64_t id) noexcept {
  if (id <= 0) return KernelThreadState::unknown;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%lld/stat", static_cast<long long>(id));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return KernelThreadState::unknown;  // no /proc, or the thread has exited
  // "tid (comm) S ...": comm is at most 16 bytes but may hold spaces and
  // parentheses, so the state is the letter after the last ')'.  The
  // fields that follow are not needed: 128 bytes hold the state.
  char text[128];
  ssize_t n;
  do {
    n = ::read(fd, text, sizeof text - 1);
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  if (n <= 0) return KernelThreadState::unknown;
  text[n] = '\0';
  const char* paren = std::strrchr(text, ')');
  if (paren == nullptr || paren[1] != ' ') return KernelThreadState::unknown;
  switch (paren[2]) {
    case 'R':
      return KernelThreadState::runnable;
    case 'S':  // interruptible sleep: read(), poll(), a futex
    case 'D':  // uninterruptible: disk IO, some file systems
      return KernelThreadState::waiting;
    default:  // stopped, traced, zombie, idle kernel thread: not the rule's business
      return KernelThreadState::unknown;
  }
}

}  // namespace evchan::detail
