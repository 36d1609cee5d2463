// TaskLocal<T>: storage that belongs to a task and travels with it.
#ifndef EVCHAN_TASK_LOCAL_H
#define EVCHAN_TASK_LOCAL_H

#include <memory>

namespace evchan {

namespace detail {
/// The running task's slot for `key`, or null outside a task.  Stores
/// `make()`'s result on first use; the task destroys it when it ends.
void* taskLocalSlot(const void* key, void* (*make)(), void (*destroy)(void*));
}  // namespace detail

/// A variable with one instance per task, default-constructed at a task's
/// first get() and destroyed when that task ends.  Unlike thread_local it
/// follows the task when it resumes on another thread.  get() outside a
/// task is std::errc::operation_not_permitted (thrown as SystemError).
template <class T>
class TaskLocal {
 public:
  TaskLocal() = default;
  TaskLocal(const TaskLocal&) = delete;
  TaskLocal& operator=(const TaskLocal&) = delete;

  T& get() {
    return *static_cast<T*>(detail::taskLocalSlot(this, [] { return static_cast<void*>(new T()); },
                                                  [](void* p) { delete static_cast<T*>(p); }));
  }
  T* operator->() { return &get(); }
  T& operator*() { return get(); }
};

}  // namespace evchan

#endif  // EVCHAN_TASK_LOCAL_H
