// SPDX-License-Identifier: Apache-2.0
// Test support (Linux): whether another thread of this process waits in
// poll(2), as a thread's call on a socket or a ShmStream does when it
// sleeps.  More than "state S", which a lock taken on the way (one of
// ThreadSanitizer's, say) would show as well.
#ifndef EVCHAN_TEST_SUPPORT_POSIX_THREAD_IN_POLL_H
#define EVCHAN_TEST_SUPPORT_POSIX_THREAD_IN_POLL_H

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace evchan::test {

/// The calling thread's kernel id, for waitsInPoll() on another thread.
inline pid_t currentThreadId() { return static_cast<pid_t>(syscall(SYS_gettid)); }

/// Whether the thread `tid` of this process is inside poll(2) or ppoll(2)
/// now (its /proc/self/task/TID/syscall).
inline bool waitsInPoll(pid_t tid) {
  std::ifstream file("/proc/self/task/" + std::to_string(tid) + "/syscall");
  long number = -1;
  return (file >> number) && (number == SYS_poll || number == SYS_ppoll);
}

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_POSIX_THREAD_IN_POLL_H
