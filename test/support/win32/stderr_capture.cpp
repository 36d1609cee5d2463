// SPDX-License-Identifier: Apache-2.0
// StderrCapture on Windows hosts: the C runtime's descriptor 2 into a pipe
// (_pipe, _dup2), which the library's stderr writes reach as well (the DLL
// and the suites share one C runtime: docs/windows.md).
#include "support/stderr_capture.h"

#include <fcntl.h>
#include <io.h>

#include <cppunit/extensions/HelperMacros.h>

#include <cstdio>

namespace evchan::test {

StderrCapture::StderrCapture() {
  CPPUNIT_ASSERT(::_pipe(pipe_, 64 * 1024, _O_BINARY) == 0);
  std::fflush(stderr);
  saved_ = ::_dup(2);
  CPPUNIT_ASSERT(saved_ >= 0 && ::_dup2(pipe_[1], 2) == 0);
  ::_close(pipe_[1]);
}

StderrCapture::~StderrCapture() {
  restore();
  ::_close(pipe_[0]);
}

std::string StderrCapture::text() {
  restore();
  std::string all;
  char buffer[4096];
  for (int n; (n = ::_read(pipe_[0], buffer, sizeof buffer)) > 0;) all.append(buffer, static_cast<std::size_t>(n));
  return all;
}

void StderrCapture::restore() {
  if (saved_ < 0) return;
  std::fflush(stderr);
  ::_dup2(saved_, 2);  // the pipe's last writer goes: _read() ends at its end
  ::_close(saved_);
  saved_ = -1;
}

}  // namespace evchan::test
