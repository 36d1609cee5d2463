// SPDX-License-Identifier: Apache-2.0
// The calling thread's identity, safe to read again after a task resumes.
#ifndef EVCHAN_THREAD_IDENTITY_H
#define EVCHAN_THREAD_IDENTITY_H

#include <thread>

#include <evchan/export.h>

namespace evchan {

/// The id of the thread running the caller, read afresh on every call.
///
/// A task may resume on another worker thread after any call that can
/// suspend it (socket and file calls, `this_task::yield()`, `sleepFor()`,
/// `TaskHandle::join()`, a contended `Mutex::lock()`, the waits of
/// `ConditionVariable` and `Notification`).  The compiler does not know
/// that: `std::this_thread::get_id()` is built on `pthread_self()`, which
/// glibc declares `const`, so GCC and clang may reuse a value read before
/// the suspension after it, and they may likewise keep the address of a
/// `thread_local` variable, or of `errno`, in a register across the call.
/// Inside a task, read the thread's identity with this function (an opaque
/// call the optimiser may neither fold nor move), keep per-task state in
/// `TaskLocal<T>`, and identify the task with `this_task::id()`.
EVCHAN_API std::thread::id currentThreadId() noexcept;

}  // namespace evchan

#endif  // EVCHAN_THREAD_IDENTITY_H
