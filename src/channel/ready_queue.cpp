// SPDX-License-Identifier: Apache-2.0
// ReadyQueue: completed events held for getEvent(), and the process-wide
// list of shut-down channels' queues that ~Event searches.
#include "channel/ready_queue.h"

#include <algorithm>
#include <vector>

#include "apr/fork_hooks.h"

namespace evchan::detail {
namespace {

// The queues of channels shut down and not yet destroyed, where ~Event
// looks for an event still held for getEvent().  Immortal, like the stack
// pools: a channel that static destruction tears down must still find it.
// Its lock is free across a fork(): a child destroys channels of its own.
// The child forgets the parent's queues, whose locks a parent thread may
// have held: its own events never are in them.
struct ShutDownQueues {
  std::mutex mutex;
  std::vector<ReadyQueue*> queues;
};

ShutDownQueues& shutDownQueues();
void lockShutDownQueues() { shutDownQueues().mutex.lock(); }
void unlockShutDownQueues() { shutDownQueues().mutex.unlock(); }
void forgetShutDownQueuesInChild() {
  shutDownQueues().queues.clear();  // keeps the capacity: no allocation
  unlockShutDownQueues();
}

ShutDownQueues& shutDownQueues() {
  static ShutDownQueues* const registry = [] {
    auto* created = new ShutDownQueues;  // immortal, on purpose
    holdAcrossFork(&lockShutDownQueues, &unlockShutDownQueues, &forgetShutDownQueuesInChild);
    return created;
  }();
  return *registry;
}

}  // namespace

void ReadyQueue::push(Event& event) noexcept {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (ownerGone_) {
      // Nobody can call getEvent() any more: back to its owner at once.
      EventAccess::inFlight(event).store(false, std::memory_order_release);
      return;
    }
    events_.push(event);
  }
  available_.notify_one();
}

Event* ReadyQueue::take(Deadline deadline, const std::atomic<bool>* stop) noexcept {
  std::unique_lock<std::mutex> lock(mutex_);
  waiting_.fetch_add(1, std::memory_order_relaxed);
  Event* event = nullptr;
  for (;;) {
    if ((event = events_.pop()) != nullptr) break;
    if (closed_ || ownerGone_ || (stop != nullptr && stop->load(std::memory_order_acquire))) break;
    if (deadline == kNoDeadline) {
      available_.wait(lock);
    } else if (available_.wait_until(lock, deadline) == std::cv_status::timeout) {
      event = events_.pop();
      break;
    }
  }
  waiting_.fetch_sub(1, std::memory_order_relaxed);
  return event;
}

void ReadyQueue::close() noexcept {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  available_.notify_all();
}

void ReadyQueue::wakeWaiters() noexcept {
  // Under the mutex: a take() between its check of `stop` and its wait
  // would miss a notification sent without it.
  std::lock_guard<std::mutex> lock(mutex_);
  available_.notify_all();
}

void ReadyQueue::listAsShutDown() noexcept {
  ShutDownQueues& registry = shutDownQueues();
  std::lock_guard<std::mutex> lock(registry.mutex);
  registry.queues.push_back(this);
}

void ReadyQueue::releaseHeld() noexcept {
  ShutDownQueues& registry = shutDownQueues();
  std::lock_guard<std::mutex> lock(registry.mutex);
  {
    std::lock_guard<std::mutex> held(mutex_);
    ownerGone_ = true;
    while (Event* event = events_.pop()) EventAccess::inFlight(*event).store(false, std::memory_order_release);
  }
  available_.notify_all();
  registry.queues.erase(std::remove(registry.queues.begin(), registry.queues.end(), this), registry.queues.end());
}

bool ReadyQueue::forgetHeld(Event& event) noexcept {
  ShutDownQueues& registry = shutDownQueues();
  // A queue listed here is alive: it leaves the list, under this lock,
  // before it is destroyed.
  std::lock_guard<std::mutex> lock(registry.mutex);
  if (!event.inFlight()) return true;  // handed back meanwhile
  for (ReadyQueue* queue : registry.queues) {
    std::lock_guard<std::mutex> held(queue->mutex_);
    if (queue->takeLocked(event)) {
      EventAccess::inFlight(event).store(false, std::memory_order_release);
      return true;
    }
  }
  return false;
}

bool ReadyQueue::takeLocked(Event& event) noexcept {
  // Linear, and only on this rare path: the queue is a singly linked FIFO.
  EventQueue kept;
  bool found = false;
  while (Event* queued = events_.pop()) {
    if (queued == &event) found = true; else kept.push(*queued);
  }
  events_ = kept;
  return found;
}

}  // namespace evchan::detail
