// SPDX-License-Identifier: Apache-2.0
// Makes a raised SIGPIPE fatal for the duration of a test.
#ifndef EVCHAN_TEST_SUPPORT_DEFAULT_SIGPIPE_H
#define EVCHAN_TEST_SUPPORT_DEFAULT_SIGPIPE_H

#include <memory>
#include <string>

namespace evchan::test {

/// Puts SIGPIPE in its default disposition (terminate the process) and
/// unblocks it on this thread, so a write that raised it would kill the
/// test binary; restores both afterwards.  Threads started meanwhile (a
/// channel's workers) inherit the unblocked mask.  Windows has no SIGPIPE:
/// there it does nothing (support/win32/default_sigpipe.cpp).
class DefaultSigpipe {
 public:
  DefaultSigpipe();
  ~DefaultSigpipe();
  DefaultSigpipe(const DefaultSigpipe&) = delete;
  DefaultSigpipe& operator=(const DefaultSigpipe&) = delete;

  /// Empty when a SIGPIPE raised now on this thread would kill the
  /// process; otherwise what would keep it harmless.
  static std::string whatKeepsSigpipeHarmless();

 private:
  struct Saved;
  std::unique_ptr<Saved> saved_;
};

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_DEFAULT_SIGPIPE_H
