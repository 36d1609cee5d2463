// SPDX-License-Identifier: Apache-2.0
// DefaultSigpipe on POSIX hosts: sigaction() and the thread's signal mask.
#include "support/default_sigpipe.h"

#include <pthread.h>
#include <signal.h>

namespace evchan::test {

struct DefaultSigpipe::Saved {
  struct sigaction action = {};
  sigset_t mask;
};

DefaultSigpipe::DefaultSigpipe() : saved_(std::make_unique<Saved>()) {
  struct sigaction byDefault = {};
  byDefault.sa_handler = SIG_DFL;
  sigemptyset(&byDefault.sa_mask);
  sigaction(SIGPIPE, &byDefault, &saved_->action);
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_UNBLOCK, &pipe, &saved_->mask);
}

DefaultSigpipe::~DefaultSigpipe() {
  pthread_sigmask(SIG_SETMASK, &saved_->mask, nullptr);
  sigaction(SIGPIPE, &saved_->action, nullptr);
}

std::string DefaultSigpipe::whatKeepsSigpipeHarmless() {
  struct sigaction current = {};
  if (sigaction(SIGPIPE, nullptr, &current) != 0) return "sigaction() failed";
  if (current.sa_handler != SIG_DFL || (current.sa_flags & SA_SIGINFO)) return "SIGPIPE has a handler or is ignored";
  sigset_t blocked;
  pthread_sigmask(SIG_SETMASK, nullptr, &blocked);
  if (sigismember(&blocked, SIGPIPE)) return "SIGPIPE is blocked on this thread";
  return "";
}

}  // namespace evchan::test
