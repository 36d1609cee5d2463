// SPDX-License-Identifier: Apache-2.0
// Test support (POSIX): the test binary started again as a helper process.
//
// A test that needs a process of its own (another user, a resource limit,
// a peer to kill) starts a fresh image of its binary rather than fork()ing:
// a test process has threads (the case watchdog, a sanitizer's), and a
// forked child may find a lock one of them held at the fork still held, in
// malloc or in the sanitizer's allocator, and hang.
#ifndef EVCHAN_TEST_SUPPORT_POSIX_SELF_PROCESS_H
#define EVCHAN_TEST_SUPPORT_POSIX_SELF_PROCESS_H

#include <sys/types.h>

#include <chrono>
#include <string>

namespace evchan::test {

/// This binary (/proc/self/exe) started with `variable`=`role` added to the
/// environment; the child reads the variable before main() and does what
/// the role says instead of running tests.  Killed and reaped at the end.
class SelfProcess {
 public:
  /// Starts the child; fails the running test if it cannot.  `noSuchTest`
  /// names a test no suite has: should the role not trigger, the child runs
  /// no test rather than the whole suite again.
  SelfProcess(const char* variable, const std::string& role, const char* noSuchTest);
  ~SelfProcess();
  SelfProcess(const SelfProcess&) = delete;
  SelfProcess& operator=(const SelfProcess&) = delete;

  /// Sends SIGKILL (the child is still reaped by exitStatus() or the
  /// destructor).
  void kill9() const;

  /// The exit status once the child has ended (128 + the signal if one
  /// killed it); fails the running test if it has not ended within
  /// `patience`.
  int exitStatus(std::chrono::milliseconds patience);

 private:
  pid_t pid_ = -1;
};

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_POSIX_SELF_PROCESS_H
