// SPDX-License-Identifier: Apache-2.0
// Capturing what the process writes to stderr, for the suites that check
// evchan's own lines there (each host's way: support/{posix,win32}/).
#ifndef EVCHAN_TEST_SUPPORT_STDERR_CAPTURE_H
#define EVCHAN_TEST_SUPPORT_STDERR_CAPTURE_H

#include <string>

namespace evchan::test {

/// Sends what the process writes to stderr (descriptor 2, which the C
/// library's stderr writes to) into a pipe while it lives; text() restores
/// descriptor 2 and returns what was written.  Assertions fail when the
/// pipe cannot be made.  Writes larger than the pipe's buffer would block:
/// meant for a few lines.
class StderrCapture {
 public:
  StderrCapture();
  ~StderrCapture();
  std::string text();

  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;

 private:
  void restore();
  int pipe_[2] = {-1, -1};
  int saved_ = -1;
};

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_STDERR_CAPTURE_H
