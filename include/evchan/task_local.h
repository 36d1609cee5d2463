// SPDX-License-Identifier: Apache-2.0
// TaskLocal<T>: storage that belongs to a task and travels with it.
#ifndef EVCHAN_TASK_LOCAL_H
#define EVCHAN_TASK_LOCAL_H

#include <atomic>
#include <cstdint>

#include <evchan/export.h>

namespace evchan {

/// What every TaskLocal<T> has in common: its key and the lookup of the
/// running task's instance.  Not for direct use.
class EVCHAN_API TaskLocalBase {
 protected:
  constexpr TaskLocalBase() noexcept = default;
  TaskLocalBase(const TaskLocalBase&) = delete;
  TaskLocalBase& operator=(const TaskLocalBase&) = delete;

  /// The running task's instance: `make()`'s result, stored at this
  /// TaskLocal's first get() in the task and handed to `destroy` when the
  /// task ends.  Throws outside a task.
  void* slot(void* (*make)(), void (*destroy)(void*));

 private:
  std::atomic<std::uint64_t> key_{0};  // a number no other TaskLocal has had, assigned at the first get()
};

/// A variable with one instance per task, default-constructed at a task's
/// first get() and destroyed when that task ends.  Unlike thread_local it
/// follows the task when it resumes on another thread.  get() outside a
/// task is std::errc::operation_not_permitted (thrown as SystemError).
///
/// Each TaskLocal object is a variable of its own, whatever its address: a
/// TaskLocal built where a destroyed one lived (a stack slot or reused
/// heap) starts with fresh instances.  Destroying a TaskLocal does not
/// destroy its instances: each lives on, unreachable, until its task ends,
/// so T's destructor must not refer to the TaskLocal itself.  It may use
/// other TaskLocals (one whose instance is gone already gets a fresh one,
/// destroyed in turn); it must not throw: as for thread_local, an
/// exception escaping it calls std::terminate.
template <class T>
class TaskLocal : private TaskLocalBase {
 public:
  constexpr TaskLocal() noexcept = default;

  /// The running task's instance, default-constructed at the task's first
  /// call.  Throws SystemError(std::errc::operation_not_permitted) outside a
  /// task.  Valid until the task ends.
  T& get() {
    return *static_cast<T*>(slot([] { return static_cast<void*>(new T()); }, [](void* p) { delete static_cast<T*>(p); }));
  }
  /// Member access to get()'s instance; throws like get().
  T* operator->() { return &get(); }
  /// get(); throws like it.
  T& operator*() { return get(); }
};

}  // namespace evchan

#endif  // EVCHAN_TASK_LOCAL_H
