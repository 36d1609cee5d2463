// SPDX-License-Identifier: Apache-2.0
// StderrCapture on POSIX hosts: fd 2 into a pipe.
#include "support/stderr_capture.h"

#include <unistd.h>

#include <cppunit/extensions/HelperMacros.h>

#include <cstdio>

namespace evchan::test {

StderrCapture::StderrCapture() {
  CPPUNIT_ASSERT(::pipe(pipe_) == 0);
  std::fflush(stderr);
  saved_ = ::dup(2);
  CPPUNIT_ASSERT(saved_ >= 0 && ::dup2(pipe_[1], 2) == 2);
  ::close(pipe_[1]);
}

StderrCapture::~StderrCapture() {
  restore();
  ::close(pipe_[0]);
}

std::string StderrCapture::text() {
  restore();
  std::string all;
  char buffer[4096];
  for (ssize_t n; (n = ::read(pipe_[0], buffer, sizeof buffer)) > 0;) all.append(buffer, std::size_t(n));
  return all;
}

void StderrCapture::restore() {
  if (saved_ < 0) return;
  std::fflush(stderr);
  ::dup2(saved_, 2);  // the pipe's last writer goes: read() ends at EOF
  ::close(saved_);
  saved_ = -1;
}

}  // namespace evchan::test
