// SPDX-License-Identifier: Apache-2.0
// ChannelCore's completion: how a completed event reaches its consumer, a
// callback (or a task) run on a worker, or getEvent() through ready_.
#include <cstdio>

#include <evchan/error.h>

#include "apr/file_state.h"
#include "channel/channel_core.h"

namespace evchan::detail {

void ChannelCore::complete(Event& event, std::error_code result) noexcept {
  EventAccess::error(event) = result;
  if (!EventAccess::callback(event)) {
    deliver(event);
    return;
  }
  // A task's wait: on one of this channel's workers, with room in its
  // batch for the task, waking it here queues the task where the event
  // would have gone, and saves a trip of the event through the queue.
  // The callback takes no lock (the room means enqueueLocal() succeeds),
  // and nothing touches the event after it: the task may already run.
  if (EventAccess::wakesTask(event) && localBatchHasRoom()) {
    EventAccess::inFlight(event).store(false, std::memory_order_release);
    EventAccess::callback(event)(event);
    return;
  }
  schedule(event);
}

std::error_code ChannelCore::completeAtPost(Event& event, std::error_code result) noexcept {
  EventAccess::error(event) = result;
  if (!EventAccess::callback(event)) {
    deliver(event);
    return {};
  }
  if (EventAccess::wakesTask(event) && localBatchHasRoom()) {  // as complete()
    EventAccess::inFlight(event).store(false, std::memory_order_release);
    EventAccess::callback(event)(event);
    return {};
  }
  return scheduleUnlessShutDown(event) ? std::error_code() : Errc::channel_shut_down;
}

bool ChannelCore::keepPoolForCompletion() noexcept {
  // Counted, then the look for a shutdown, both sequentially consistent
  // (see completionQueued()): a shutdown this look does not find comes
  // after the count, and so does every worker's look at it.
  completionsUnderWay_.fetch_add(1);
  if (!shutDown_.load()) return true;
  completionQueued();
  return false;
}

void ChannelCore::schedule(Event& event) noexcept {
  if (enqueueLocal(event)) return;
  scheduleShared(event, !spillQuietly());
}

bool ChannelCore::scheduleUnlessShutDown(Event& event) noexcept {
  if (enqueueLocal(event)) return true;
  std::unique_lock<std::mutex> lock(mutex_);
  if (stopping_) return false;
  queueSharedLocked(event, !spillQuietly(), lock);
  return true;
}

void ChannelCore::scheduleLocked(Event& event) noexcept {
  if (enqueueLocal(event)) return;
  if (spillQuietly()) {
    runQueue_.push(event);
  } else {
    enqueueLocked(event);
  }
}

void ChannelCore::scheduleShared(Event& event, bool wake) noexcept {
  std::unique_lock<std::mutex> lock(mutex_);
  if (stopping_ && threads_ == 0) {
    // The pool is gone (a socket closed after shutdown): run it here.
    lock.unlock();
    runCompletion(event);
    return;
  }
  queueSharedLocked(event, wake, lock);
}

void ChannelCore::queueSharedLocked(Event& event, bool wake, std::unique_lock<std::mutex>& lock) noexcept {
  runQueue_.push(event);
  if (!wake) {
    lock.unlock();
    return;
  }
  // The worker to wake is notified once the lock is released (a worker
  // that idles on workAvailable_ was counted in idle_ under the lock, so
  // it is waiting and the notification finds it; if it timed out
  // meanwhile, it is running and sees the queue anyway).
  int notify = 0;
  dispatchWorkLocked(&notify);
  lock.unlock();
  while (notify-- > 0) workAvailable_.notify_one();
}

void ChannelCore::scheduleBatch(EventQueue& batch) noexcept {
  if (batch.empty()) return;
  std::unique_lock<std::mutex> lock(mutex_);
  if (stopping_ && threads_ == 0) {
    lock.unlock();
    while (Event* event = batch.pop()) runCompletion(*event);
    return;
  }
  runQueue_.append(batch);
  int notify = 0;
  dispatchWorkLocked(&notify);
  // More than one: every idle worker takes a share.
  while (wakeIdleLocked(&notify)) {
  }
  lock.unlock();
  while (notify-- > 0) workAvailable_.notify_one();
}

void ChannelCore::deliver(Event& event) noexcept { ready_.push(event); }

void ChannelCore::releaseHeldEvents() noexcept { ready_.releaseHeld(); }

bool ChannelCore::forgetHeldEvent(Event& event) noexcept { return ReadyQueue::forgetHeld(event); }

void ChannelCore::runCompletion(Event& event) noexcept {
  if (EventAccess::runnable(event)) {
    static_cast<RunnableEvent&>(event).run();
    return;
  }
  // Work the channel does on a worker before the event completes: a
  // DispatchEvent's function, a file IO no backend completes.
  const bool file = event.kind() == Event::Kind::FileRead || event.kind() == Event::Kind::FileWrite;
  if ((event.kind() == Event::Kind::Dispatch || file) && !EventAccess::started(event)) {
    EventAccess::started(event) = true;
    if (file) {
      performFileOperation(event);
    } else {
      try {
        EventAccess::function(static_cast<DispatchEvent&>(event))();
      } catch (...) {
        EventAccess::error(event) = std::make_error_code(std::errc::state_not_recoverable);
      }
    }
    if (!EventAccess::callback(event)) {
      deliver(event);
      return;
    }
  }
  // Copied: once the event is out of flight the callback may re-post it,
  // and another worker may complete it while this one still runs.
  Event::Callback callback = EventAccess::callback(event);
  EventAccess::inFlight(event).store(false, std::memory_order_release);
  try {
    callback(event);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "evchan: exception escaped an event callback: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "evchan: exception escaped an event callback\n");
  }
}

void ChannelCore::performFileOperation(Event& event) noexcept {
  const bool read = event.kind() == Event::Kind::FileRead;
  FileState* file = FileAccess::state(read ? static_cast<FileReadEvent&>(event).file()
                                           : static_cast<FileWriteEvent&>(event).file());
  // Counted as a call: a close() meanwhile waits for it to leave the handle.
  if (file == nullptr || !enterFile(*file)) {
    EventAccess::error(event) = Errc::not_open;
    return;
  }
  std::size_t done = 0;
  std::error_code ec;
  enterBlocking();
  if (read) {
    auto& r = static_cast<FileReadEvent&>(event);
    ec = readOnce(*file, r.offset(), r.buffer(), r.size(), done);
    EventAccess::transferred(r) = done;
  } else {
    auto& w = static_cast<FileWriteEvent&>(event);
    ec = writeOnce(*file, w.offset(), w.buffer(), w.size(), done);
    EventAccess::transferred(w) = done;
  }
  leaveBlocking();
  leaveFile(*file);
  EventAccess::error(event) = ec;
}

void ChannelCore::operationCompleted(Event& event, std::error_code result) noexcept { complete(event, result); }

Event* ChannelCore::getEvent(Duration timeout) {
  // The owner may destroy the EventChannel while this thread waits: the
  // core lives on until the last waiter has left (see ~EventChannel).
  const std::shared_ptr<ChannelCore> keepAlive = shared_from_this();
  const Deadline deadline = deadlineAfter(timeout < Duration::zero() ? Duration::zero() : timeout);
  // A worker of this channel waiting here would keep shutdown() waiting for it.
  const bool ownWorker = currentWorkerChannel() == this;
  enterBlocking();
  Event* event = ready_.take(deadline, ownWorker ? &shutDown_ : nullptr);
  leaveBlocking();
  if (event != nullptr) EventAccess::inFlight(*event).store(false, std::memory_order_release);
  return event;
}

}  // namespace evchan::detail
