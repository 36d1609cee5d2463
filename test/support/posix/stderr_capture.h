// SPDX-License-Identifier: Apache-2.0
// Capturing what the process writes to stderr (POSIX: fd 2 into a pipe).
#ifndef EVCHAN_TEST_SUPPORT_POSIX_STDERR_CAPTURE_H
#define EVCHAN_TEST_SUPPORT_POSIX_STDERR_CAPTURE_H

#include <cppunit/extensions/HelperMacros.h>

#include <cstdio>
#include <string>

#include <unistd.h>

namespace evchan::test {

/// Sends what the process writes to stderr (fd 2) into a pipe while it
/// lives; text() restores fd 2 and returns what was written.
class StderrCapture {
 public:
  StderrCapture() {
    CPPUNIT_ASSERT(::pipe(pipe_) == 0);
    std::fflush(stderr);
    saved_ = ::dup(2);
    CPPUNIT_ASSERT(saved_ >= 0 && ::dup2(pipe_[1], 2) == 2);
    ::close(pipe_[1]);
  }
  ~StderrCapture() {
    restore();
    ::close(pipe_[0]);
  }
  std::string text() {
    restore();
    std::string all;
    char buffer[4096];
    for (ssize_t n; (n = ::read(pipe_[0], buffer, sizeof buffer)) > 0;) all.append(buffer, std::size_t(n));
    return all;
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, 2);  // the pipe's last writer goes: read() ends at EOF
    ::close(saved_);
    saved_ = -1;
  }
  int pipe_[2] = {-1, -1};
  int saved_ = -1;

 public:
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;
};

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_POSIX_STDERR_CAPTURE_H
