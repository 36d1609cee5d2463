// evchan::blocking(): runs a call that blocks its thread without starving the pool.
#ifndef EVCHAN_BLOCKING_H
#define EVCHAN_BLOCKING_H

namespace evchan {

namespace detail {
/// Count the calling worker as blocked (starting a spare thread if queued
/// work would otherwise wait), and stop counting it.  No-ops on a thread
/// that is not a channel worker.
void enterBlockingCall() noexcept;
void leaveBlockingCall() noexcept;

class BlockingCallGuard {
 public:
  BlockingCallGuard() noexcept { enterBlockingCall(); }
  ~BlockingCallGuard() { leaveBlockingCall(); }
  BlockingCallGuard(const BlockingCallGuard&) = delete;
  BlockingCallGuard& operator=(const BlockingCallGuard&) = delete;
};
}  // namespace detail

/// Calls `fn()` and returns what it returns (or lets its exception
/// through).  On a channel's worker (a callback, a task) the worker counts
/// as blocked for the duration, so the pool starts a spare thread at once
/// for queued work, within maxThreads: wrap genuinely blocking calls in it
/// (a third-party library, getaddrinfo, a disk read).  Elsewhere it is a
/// plain call.  `fn` must not suspend the task (this_task::sleepFor,
/// socket calls inside tasks): those never block the worker anyway.
template <class F>
auto blocking(F&& fn) -> decltype(fn()) {
  detail::BlockingCallGuard guard;
  return fn();
}

}  // namespace evchan

#endif  // EVCHAN_BLOCKING_H
