// SPDX-License-Identifier: Apache-2.0
// evchan::blocking(): runs a call that blocks its thread without starving the pool.
#ifndef EVCHAN_BLOCKING_H
#define EVCHAN_BLOCKING_H

#include <evchan/export.h>

namespace evchan {

/// Counts the calling worker as blocked while it lives: on a channel's
/// worker (a callback, a task) the pool starts a spare thread at once if
/// queued work would otherwise wait, within maxThreads.  Elsewhere it does
/// nothing.  blocking() is the usual way to use it; a BlockingScope suits a
/// section of code rather than one call.  Like blocking(), the section must
/// not suspend the task.
class EVCHAN_API BlockingScope {
 public:
  /// Starts counting the calling worker as blocked (see above).
  BlockingScope() noexcept;
  /// Stops counting it as blocked.
  ~BlockingScope();
  BlockingScope(const BlockingScope&) = delete;
  BlockingScope& operator=(const BlockingScope&) = delete;
};

/// Calls `fn()` and returns what it returns (or lets its exception
/// through).  On a channel's worker (a callback, a task) the worker counts
/// as blocked for the duration, so the pool starts a spare thread at once
/// for queued work, within maxThreads: wrap genuinely blocking calls in it
/// (a third-party library, getaddrinfo, a disk read).  Elsewhere it is a
/// plain call.  `fn` must not suspend the task (this_task::sleepFor,
/// socket calls inside tasks): those never block the worker anyway.
template <class F>
auto blocking(F&& fn) -> decltype(fn()) {
  BlockingScope scope;
  return fn();
}

}  // namespace evchan

#endif  // EVCHAN_BLOCKING_H
