// Makes a raised SIGPIPE fatal for the duration of a test.
#ifndef EVCHAN_TEST_SUPPORT_DEFAULT_SIGPIPE_H
#define EVCHAN_TEST_SUPPORT_DEFAULT_SIGPIPE_H

#include <pthread.h>
#include <signal.h>

namespace evchan::test {

/// Puts SIGPIPE in its default disposition (terminate the process) and
/// unblocks it on this thread, so a write that raised it would kill the
/// test binary; restores both afterwards.  Threads started meanwhile (a
/// channel's workers) inherit the unblocked mask.
class DefaultSigpipe {
 public:
  DefaultSigpipe() {
    struct sigaction byDefault = {};
    byDefault.sa_handler = SIG_DFL;
    sigemptyset(&byDefault.sa_mask);
    sigaction(SIGPIPE, &byDefault, &savedAction_);
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_UNBLOCK, &pipe, &savedMask_);
  }
  ~DefaultSigpipe() {
    pthread_sigmask(SIG_SETMASK, &savedMask_, nullptr);
    sigaction(SIGPIPE, &savedAction_, nullptr);
  }
  DefaultSigpipe(const DefaultSigpipe&) = delete;
  DefaultSigpipe& operator=(const DefaultSigpipe&) = delete;

 private:
  struct sigaction savedAction_ = {};
  sigset_t savedMask_;
};

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_DEFAULT_SIGPIPE_H
