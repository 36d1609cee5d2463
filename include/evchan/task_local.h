// TaskLocal<T>: storage that belongs to a task and travels with it.
#ifndef EVCHAN_TASK_LOCAL_H
#define EVCHAN_TASK_LOCAL_H

#include <atomic>
#include <cstdint>

namespace evchan {

namespace detail {
/// The running task's slot for the TaskLocal whose key is `key`: 0 until
/// its first get(), which gives it a number no other TaskLocal of the
/// process has had or will have.  Stores `make()`'s result on first use;
/// the task destroys it when it ends.  Throws outside a task.
void* taskLocalSlot(std::atomic<std::uint64_t>& key, void* (*make)(), void (*destroy)(void*));
}  // namespace detail

/// A variable with one instance per task, default-constructed at a task's
/// first get() and destroyed when that task ends.  Unlike thread_local it
/// follows the task when it resumes on another thread.  get() outside a
/// task is std::errc::operation_not_permitted (thrown as SystemError).
///
/// Each TaskLocal object is a variable of its own, whatever its address: a
/// TaskLocal built where a destroyed one lived (a stack slot or reused
/// heap) starts with fresh instances.  Destroying a TaskLocal does not
/// destroy its instances: each lives on, unreachable, until its task ends,
/// so T's destructor must not refer to the TaskLocal itself.
template <class T>
class TaskLocal {
 public:
  constexpr TaskLocal() noexcept = default;
  TaskLocal(const TaskLocal&) = delete;
  TaskLocal& operator=(const TaskLocal&) = delete;

  T& get() {
    return *static_cast<T*>(detail::taskLocalSlot(key_, [] { return static_cast<void*>(new T()); },
                                                  [](void* p) { delete static_cast<T*>(p); }));
  }
  T* operator->() { return &get(); }
  T& operator*() { return get(); }

 private:
  std::atomic<std::uint64_t> key_{0};  // assigned at the first get()
};

}  // namespace evchan

#endif  // EVCHAN_TASK_LOCAL_H
