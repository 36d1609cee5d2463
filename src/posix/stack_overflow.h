// SPDX-License-Identifier: Apache-2.0
// Internal: reporting a task stack overflow instead of corrupting memory.
#ifndef EVCHAN_SRC_POSIX_STACK_OVERFLOW_H
#define EVCHAN_SRC_POSIX_STACK_OVERFLOW_H

#include <cstdint>

#include "posix/stack_pool.h"

namespace evchan::detail {

/// Installs (once per process) a SIGSEGV/SIGBUS handler that recognises a
/// fault in the guard page of the stack the faulting thread runs on, and
/// gives the calling thread an alternate signal stack (the overflowed stack
/// has no room left for the handler).  Other faults go to the handler that
/// was there before, or to the default action.  On Windows
/// (src/win32/stack_overflow.cpp): a vectored exception handler that names
/// the task on EXCEPTION_STACK_OVERFLOW while a task runs, once per process.
void prepareStackOverflowReporting() noexcept;

/// Tells the handler which guarded stack this thread runs on now and the
/// task's id, for the message; `stack` null when back on the thread's own.
void setRunningStack(const Stack* stack, std::uint64_t taskId) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_POSIX_STACK_OVERFLOW_H
