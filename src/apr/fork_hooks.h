// SPDX-License-Identifier: Apache-2.0
// Internal: keeping the locks of process-wide state free across fork().
#ifndef EVCHAN_SRC_APR_FORK_HOOKS_H
#define EVCHAN_SRC_APR_FORK_HOOKS_H

#include <cstdint>

namespace evchan::detail {

/// Registers `prepare`, run by the thread that calls fork() just before
/// the fork, and `resume`, run by that thread right after it, in the parent
/// and in the child.  For a lock of process-wide state that any thread may
/// hold for a moment: `prepare` takes it and `resume` releases it, so that
/// a child forked while another thread held it does not find it held for
/// ever (that thread does not exist in the child).  Handlers registered
/// later run first before the fork and last after it.  False when they
/// could not be registered (out of memory): a child may then find the lock
/// held.  Defined per host: src/posix/fork_hooks.cpp (pthread_atfork),
/// src/win32/fork_hooks.cpp (no fork(): nothing to do).
bool holdAcrossFork(void (*prepare)(), void (*resume)()) noexcept;
/// As above, with `resumeInChild` run in the child instead of `resume`:
/// it resets what the child must not inherit, then releases the lock.
bool holdAcrossFork(void (*prepare)(), void (*resume)(), void (*resumeInChild)()) noexcept;

/// Which process this is, as the number of fork()s that led to it since
/// the first call: one more in each child (counted by a fork hook that the
/// first call registers, so it counts the forks after that call).  For
/// state a process must not share with its parent or its siblings, such
/// as a socket only one process may drain: it records the generation it
/// was made in and is made again when that differs.  Always 0 where there
/// is no fork(), and where the hook could not be registered.
std::uint64_t forkGeneration() noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_FORK_HOOKS_H
