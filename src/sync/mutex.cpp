// Mutex: FIFO hand-over to waiting tasks and threads.
#include <evchan/mutex.h>

#include "sync/waiter.h"

namespace evchan {

void Mutex::lock() {
  std::unique_lock<std::mutex> guard(guard_);
  if (!locked_) {
    locked_ = true;
    return;
  }
  detail::Waiter waiter;
  detail::WaitList(head_, tail_).push(waiter);
  // unlock() hands the lock over (locked_ stays true) and signals us.
  for (;;) {
    switch (detail::park(waiter, guard, kInfiniteTimeout)) {
      case detail::ParkResult::signalled:
        return;
      case detail::ParkResult::timedOut:
        continue;
      case detail::ParkResult::cancelled:
        detail::WaitList(head_, tail_).remove(waiter);
        detail::throwCancelled("Mutex::lock");
    }
  }
}

bool Mutex::try_lock() {
  std::lock_guard<std::mutex> guard(guard_);
  if (locked_) return false;
  locked_ = true;
  return true;
}

void Mutex::unlock() {
  std::lock_guard<std::mutex> guard(guard_);
  if (detail::Waiter* next = detail::WaitList(head_, tail_).pop()) {
    detail::signal(*next);  // now its owner
  } else {
    locked_ = false;
  }
}

}  // namespace evchan
