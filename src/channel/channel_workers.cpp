// SPDX-License-Identifier: Apache-2.0
// ChannelCore's thread pool: workers, growth, shrinking, blocking calls,
// workers presumed stuck.
#include <algorithm>
#include <climits>
#include <utility>

#include <evchan/blocking.h>

#include "channel/channel_core.h"
#include "channel/per_thread_access.h"

namespace evchan::detail {
namespace {

// Not inlined: a task (issue: tasks) may resume on another thread, and a
// caller must never keep this thread's slot address across a switch.
[[gnu::noinline]] ChannelCore*& currentWorkerSlot() noexcept {
  freshPerThreadRead();
  static thread_local ChannelCore* current = nullptr;
  return current;
}

// A worker's private batch of completions: what one poll, or one callback,
// completed on this thread.  Running them here saves the shared queue's lock
// and a thread hand-off per event (the chain read -> write -> read of an
// echo server stays on one core); the batch is bounded so one busy socket
// cannot monopolise a worker.  An item's batch is its worker's
// WorkerActivity::batch, which the monitor shares when the item runs long.
struct LocalBatch {
  ChannelCore* core = nullptr;
  LocalBatchQueue* queue = nullptr;
  int size = 0;
  int limit = 64;
  bool spilled = false;  // spillQuietly() has said true

  bool full() const noexcept { return size >= limit; }
};

[[gnu::noinline]] LocalBatch*& localBatchSlot() noexcept {
  freshPerThreadRead();
  static thread_local LocalBatch* batch = nullptr;
  return batch;
}

// This thread's local batch if it is one of `core`'s workers running an
// item (or polling), else null.
LocalBatch* localBatchOf(const ChannelCore* core) noexcept {
  LocalBatch* batch = localBatchSlot();
  return batch != nullptr && batch->core == core ? batch : nullptr;
}

// The worker's report to the stuck-worker monitor (on its stack in workerMain).
[[gnu::noinline]] WorkerActivity*& workerActivitySlot() noexcept {
  freshPerThreadRead();
  static thread_local WorkerActivity* activity = nullptr;
  return activity;
}

}  // namespace


ChannelCore* ChannelCore::currentWorkerChannel() noexcept { return currentWorkerSlot(); }

void ChannelCore::startWorkerLocked() noexcept {
  reapExitedLocked();
  try {
    workers_.emplace_back([self = shared_from_this()] { self->workerMain(); });
  } catch (...) {
    return;  // the OS refused a thread: the pool stays as it is
  }
  ++threads_;
  noteBatchesAloneLocked();
  ++started_;
  ++startedFor_[static_cast<int>(startReason_)];
  peak_ = std::max(peak_, threads_);
}

// Joins threads that have left workerMain (they hold no lock any more).
void ChannelCore::reapExitedLocked() noexcept {
  if (exitedIds_.empty()) return;
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (std::find(exitedIds_.begin(), exitedIds_.end(), it->get_id()) != exitedIds_.end() &&
        it->get_id() != std::this_thread::get_id()) {
      it->join();
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
  exitedIds_.clear();
}

bool ChannelCore::enqueueLocal(Event& event) noexcept {
  LocalBatch* batch = localBatchOf(this);
  if (batch == nullptr || batch->full()) return false;
  batch->queue->push(event);
  ++batch->size;
  return true;
}

bool ChannelCore::localBatchHasRoom() noexcept {
  const LocalBatch* batch = localBatchOf(this);
  return batch != nullptr && !batch->full();
}

bool ChannelCore::spillQuietly() noexcept {
  LocalBatch* batch = localBatchOf(this);
  if (batch == nullptr || !batch->full() || batch->spilled) return false;
  batch->spilled = true;
  return true;
}

void ChannelCore::publishLocal(LocalBatchQueue& batch) noexcept {
  EventQueue events;
  batch.takeAll(events);
  if (events.empty()) return;
  std::lock_guard<std::mutex> lock(mutex_);
  while (Event* event = events.pop()) enqueueLocked(*event);
}

void ChannelCore::shareLocalBatch() noexcept {
  if (runsBatchAlone()) return;  // nobody to share it with
  if (LocalBatch* batch = localBatchOf(this)) publishLocal(*batch->queue);
}

int ChannelCore::runWithLocalBatch(Event& first, WorkerActivity& activity) noexcept {
  LocalBatch batch;
  batch.core = this;
  batch.queue = &activity.batch;
  localBatchSlot() = &batch;
  beginItem(activity);
  runCompletion(first);
  endItem(activity);
  int keptAlone = 0;
  while (Event* next = batch.queue->pop()) {
    // Run the batch's next item here, share the rest with idle workers,
    // unless there is nobody to share it with.  Checked at every item: a
    // blocking() call in one may have started a second worker.  (What an
    // item completes or wakes joins the batch at its tail: after a poll's
    // batch kept alone, behind the rest of it.)
    if (runsBatchAlone()) {
      ++keptAlone;
    } else {
      publishLocal(*batch.queue);
    }
    beginItem(activity);
    runCompletion(*next);
    endItem(activity);
  }
  localBatchSlot() = nullptr;
  return keptAlone;
}

void ChannelCore::noteBatchesAloneLocked() noexcept {
  batchesAlone_.store(threads_ == 1 && monitorRunning_ && !stopping_, std::memory_order_relaxed);
}

void ChannelCore::beginItem(WorkerActivity& activity) noexcept {
  activity.inItem = true;
  if (!monitored_) return;
  activity.busy.store(WorkerActivity::stamp(monitor_.tick()), std::memory_order_seq_cst);
  monitor_.noteBusy();
}

void ChannelCore::endItem(WorkerActivity& activity) noexcept {
  activity.inItem = false;
  // A task that suspended inside a blocking call left it on this thread,
  // which is free again: the call ends, uncounted, on the thread that
  // resumes it.
  if (std::exchange(activity.blockingDepth, 0) > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    --blocked_;
  }
  if (activity.busy.exchange(0, std::memory_order_seq_cst) & WorkerActivity::kPresumedBlocked) {
    std::lock_guard<std::mutex> lock(mutex_);
    --blocked_;  // not stuck after all
  }
}

bool ChannelCore::markStuckWorkers() noexcept {
  const std::uint64_t now = monitor_.tick();
  bool anyBusy = false;
  stuckCandidates_.clear();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // An item past the grace period would hold what it completed or woke
    // (its worker's local batch) until it ends: it goes to the run queue.
    for (WorkerActivity* activity : activities_) {
      const std::uint64_t busy = activity->busy.load(std::memory_order_seq_cst);
      if (busy != 0 && WorkerActivity::pastGrace(busy, now)) activity->batch.takeAll(runQueue_);
    }
    // What is queued goes to an idle worker, or to the poller, woken: a
    // queue that was not empty before need not have woken anyone (a batch
    // spilled quietly, a worker woken for one item that took only that).
    if (!runQueue_.empty()) dispatchWorkLocked();
    // Work waits for a worker: queued, or sockets and timers nobody polls.
    const bool waiting = !runQueue_.empty() || !polling_;
    // ... while a worker sleeps idle: the worker that polled is running a
    // long item of its poll's completions (a batch that looked short, or a
    // single completion, is not shared at once: see workerMain()).  The
    // idle one takes the queue or the poller's role.
    if (waiting && wakeIdleLocked()) backlogSince_ = kNoDeadline;
    for (WorkerActivity* activity : activities_) {
      const std::uint64_t busy = activity->busy.load(std::memory_order_seq_cst);
      if (busy == 0) continue;
      anyBusy = true;
      if (!waiting || (busy & WorkerActivity::kPresumedBlocked) || !WorkerActivity::pastGrace(busy, now)) continue;
      try {
        stuckCandidates_.push_back({activity, busy, activity->kernelId, KernelThreadState::unknown});
      } catch (...) {
        break;  // no memory: the others wait for the next tick
      }
    }
  }
  if (stuckCandidates_.empty()) return anyBusy;
  // Without mutex_: a worker waiting for it would look asleep.
  for (StuckCandidate& candidate : stuckCandidates_) candidate.state = kernelThreadState(candidate.kernelId);
  std::lock_guard<std::mutex> lock(mutex_);
  if (runQueue_.empty() && polling_) return anyBusy;  // nothing waits any more
  for (const StuckCandidate& candidate : stuckCandidates_) {
    // Only a live worker's activity may be touched: it may have exited.
    if (std::find(activities_.begin(), activities_.end(), candidate.activity) == activities_.end()) continue;
    switch (candidate.activity->judge(candidate.stamp, candidate.state)) {
      case WorkerActivity::Verdict::runnableFirst:
        ++runnablePastGrace_;
        continue;
      case WorkerActivity::Verdict::runnable:
      case WorkerActivity::Verdict::notYet:
        continue;
      case WorkerActivity::Verdict::stuck:
        break;
    }
    std::uint64_t busy = candidate.stamp;
    // Fails when the item ended meanwhile (or a blocking call took over).
    if (candidate.activity->busy.compare_exchange_strong(busy, busy | WorkerActivity::kPresumedBlocked,
                                                         std::memory_order_seq_cst)) {
      ++blocked_;
      startReason_ = StartReason::presumedStuck;
      dispatchWorkLocked();  // one spare thread per stuck worker, within the cap
      startReason_ = StartReason::growth;
    }
  }
  return anyBusy;
}

void ChannelCore::workerMain() noexcept {
  currentWorkerSlot() = this;
  WorkerActivity activity;
  workerActivitySlot() = &activity;
  std::unique_lock<std::mutex> lock(mutex_);
  activities_.push_back(&activity);
  for (;;) {
    // Fairness: work that keeps the run queue from emptying (tasks that
    // yield, callbacks that post again) must not keep the backend from
    // being polled, or every socket and timer waits for it to stop.  After
    // kRunsBetweenPolls items in a row, one poll that does not wait.
    const bool pollDue = !polling_ && runsSincePoll_ >= kRunsBetweenPolls;
    if (!pollDue) {
      if (Event* event = runQueue_.pop()) {
        ++runsSincePoll_;
        if (runQueue_.empty()) {
          backlogSince_ = kNoDeadline;
        } else if (backlogSince_ != kNoDeadline && idle_ > wakeups_) {
          // A batch that looked short, still queued: once it has waited
          // kHelpAfter (an item ran long) an idle worker takes a share.
          const Deadline now = Clock::now();
          if (now - backlogSince_ >= kHelpAfter) {
            wakeIdleLocked();
            backlogSince_ = now;  // another one after as long again
          }
        }
        lock.unlock();
        const int keptAlone = runWithLocalBatch(*event, activity);
        lock.lock();
        // What the item completed or woke and a worker alone kept, rather
        // than queued, counts as run from the queue: the backend is polled
        // as often.
        runsSincePoll_ += keptAlone;
        continue;
      }
    }
    // A completion backend's operations are cancelled at shutdown but come
    // back only through the ring: keep polling until they have.  Nor may a
    // worker leave while another polls: what that poll reaped (the ring no
    // longer counts it busy) is not queued yet, and the poller may need
    // help with it (a callback that waits for another's).
    if (runQueue_.empty() && stopping_ && swept_ && !polling_ && !ringBusy() &&
        completionsUnderWay_.load() == 0)
      break;
    if (!polling_) {
      // Leader/follower: one worker at a time polls the backend; it waits
      // only when nothing is queued.
      polling_ = true;
      if (lastBatchAt_ != kNoDeadline && runsSincePoll_ > 0) {
        // The items run since the last batch was queued, each on average.
        const Duration sample = (Clock::now() - lastBatchAt_) / runsSincePoll_;
        itemCost_ = (itemCost_ * 3 + sample) / 4;
      }
      lastBatchAt_ = kNoDeadline;
      runsSincePoll_ = 0;
      pollDeadline_ = runQueue_.empty() ? timers_.nextDeadlineLocked() : Clock::now();
      const Deadline deadline = pollDeadline_;
      lock.unlock();
      LocalBatchQueue completions;
      LocalBatch batch;
      batch.core = this;
      batch.queue = &completions;
      batch.limit = INT_MAX;  // published right after the poll
      localBatchSlot() = &batch;
      pollOnce(deadline);
      localBatchSlot() = nullptr;
      lock.lock();
      polling_ = false;
      pollWoken_ = false;
      pollDeadline_ = kNoDeadline;
      EventQueue polled;
      completions.takeAll(polled);
      if (runsBatchAlone() && runQueue_.empty() && !polled.empty()) {
        // The pool's only worker runs what it polled as its local batch:
        // no lock of mutex_ per item.  Only with nothing queued: queued
        // work (posted from other threads, spilled from a full batch)
        // goes first, the poll's batch behind it in the queue, so that
        // polls that keep finding work cannot starve it.  What the batch's
        // items completed or woke counts toward the next poll, as in the
        // queue.
        // batch.size: every completion the poll queued went through it.
        const int count = batch.size;
        Event* first = polled.pop();
        activity.batch.append(polled);
        lock.unlock();
        const int keptAlone = runWithLocalBatch(*first, activity);
        lock.lock();
        // Fewer when part of the batch went to the queue (the monitor
        // moved it, or a second worker started): counted as it is popped.
        runsSincePoll_ += std::max(0, keptAlone - (count - 1));
        continue;
      }
      // One lock for everything the poll completed; this worker runs it.
      // With more than one completion, and more work in them than a
      // wake-up costs (by the items measured so far), an idle worker takes
      // a share or the poller role; a single one is never worth it (a
      // context switch costs more than the callback usually does), and a
      // short batch only once it turns out long (above).  Without the
      // monitor (stuckWorkerGrace 0, or no thread for it) nothing would
      // catch a first item that runs long or blocks unannounced: the rest
      // of the batch, and the polling, would wait for it to end (or
      // forever, when it waits for them), so any batch is shared at once.
      int completed = 0;
      while (Event* event = polled.pop()) {
        runQueue_.push(*event);
        ++completed;
      }
      if (completed == 1 && stopping_) {
        // A completion backend's cancelled operations may come back one
        // poll at a time, and the monitor is gone: while this one's
        // callback runs (it may wait for another's), an idle worker polls
        // for the rest.
        wakeIdleLocked();
      } else if (completed > 1) {
        lastBatchAt_ = Clock::now();
        if (!monitorRunning_ || itemCost_ * completed >= kHelpAfter) {
          wakeIdleLocked();
          backlogSince_ = kNoDeadline;
        } else if (backlogSince_ == kNoDeadline) {
          backlogSince_ = lastBatchAt_;
        }
      }
      continue;
    }
    ++idle_;
    // Clamped: wait_for with a huge duration overflows the clock arithmetic.
    const Duration idleTimeout = std::min<Duration>(options_.idleTimeout, std::chrono::hours(24));
    const bool timedOut = workAvailable_.wait_for(lock, idleTimeout) == std::cv_status::timeout;
    --idle_;
    if (wakeups_ > 0) --wakeups_;  // whoever wakes takes a pending wake-up
    if (timedOut && threads_ > initial_ && runQueue_.empty() && !stopping_) break;  // shrink
  }
  activities_.erase(std::find(activities_.begin(), activities_.end(), &activity));
  --threads_;
  noteBatchesAloneLocked();
  ++exited_;
  exitedIds_.push_back(std::this_thread::get_id());
  if (!polling_ || !runQueue_.empty()) wakeIdleLocked();  // someone must poll and run what is queued
  const bool last = stopping_ && threads_ == 0;
  if (last) workersGone_.notify_all();
  lock.unlock();
  if (last) ready_.close();
  workerActivitySlot() = nullptr;
  currentWorkerSlot() = nullptr;
}

void ChannelCore::enqueueLocked(Event& event) noexcept {
  runQueue_.push(event);
  dispatchWorkLocked();
}

// Wakes an idle worker that nobody has woken yet.  Counting the pending
// wake-ups matters: a worker notified but not yet running still counts in
// idle_, and taking it for available would leave queued work to nobody.
bool ChannelCore::wakeIdleLocked(int* notifyLater) noexcept {
  if (idle_ <= wakeups_) return false;
  ++wakeups_;
  if (notifyLater != nullptr) {
    ++*notifyLater;
  } else {
    workAvailable_.notify_one();
  }
  return true;
}

// One eventfd write (or its like) per poll: the poll returns at the first,
// and the poller takes mutex_ before it looks at the run queue again, so
// what is queued meanwhile is seen without another.
void ChannelCore::wakePollerLocked() noexcept {
  if (pollWoken_) return;
  pollWoken_ = true;
  poller_->wakeup();
}

// Makes sure that queued work will be run and that someone polls: an idle
// worker, else the poller (woken to come back), else a new thread when
// fewer than `initial_` workers are unblocked.  Workers busy running
// callbacks are not starved: that is the pool at capacity, and work waits.
void ChannelCore::dispatchWorkLocked(int* notifyLater) noexcept {
  const bool queued = !runQueue_.empty();
  if (queued && wakeIdleLocked(notifyLater)) return;
  if (polling_) {
    if (queued) wakePollerLocked();  // the poller comes back and runs it
    return;
  }
  if (wakeIdleLocked(notifyLater)) return;  // it becomes the poller
  if (!stopping_ && threads_ - blocked_ < initial_ && threads_ < max_) startWorkerLocked();
}

void ChannelCore::enterBlocking() noexcept {
  ChannelCore* core = currentWorkerChannel();
  if (core == nullptr) return;
  WorkerActivity* activity = workerActivitySlot();
  // Nested (blocking() in blocking(), a wrapped library that wraps its own
  // calls): the worker is counted once, by the outermost call.
  if (activity != nullptr && activity->blockingDepth++ > 0) return;
  std::lock_guard<std::mutex> lock(core->mutex_);
  // The monitor leaves a worker in a blocking call alone (no busy stamp);
  // one it presumed blocked already is counted, and stays so.
  bool counted = false;
  if (activity != nullptr) {
    counted = (activity->busy.exchange(0, std::memory_order_seq_cst) & WorkerActivity::kPresumedBlocked) != 0;
  }
  if (!counted) ++core->blocked_;
  // What this worker completed locally would otherwise wait for it to
  // unblock, and may be what unblocks it: share it before blocking.
  if (LocalBatch* batch = localBatchOf(core)) batch->queue->takeAll(core->runQueue_);
  core->startReason_ = StartReason::blockingCall;
  core->dispatchWorkLocked();
  core->startReason_ = StartReason::growth;
}

void ChannelCore::leaveBlocking() noexcept {
  ChannelCore* core = currentWorkerChannel();
  if (core == nullptr) return;
  WorkerActivity* activity = workerActivitySlot();
  // Entered in an earlier item (see endItem()), or an inner call of nested ones.
  if (activity != nullptr && (activity->blockingDepth == 0 || --activity->blockingDepth > 0)) return;
  {
    std::lock_guard<std::mutex> lock(core->mutex_);
    --core->blocked_;
  }
  // Back to running the item: its grace period starts over.
  if (activity != nullptr && activity->inItem && core->monitored_) {
    activity->busy.store(WorkerActivity::stamp(core->monitor_.tick()), std::memory_order_seq_cst);
    core->monitor_.noteBusy();
  }
}

ThreadPoolStats ChannelCore::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  ThreadPoolStats stats;
  stats.current = threads_;
  stats.peak = peak_;
  stats.idle = idle_ + (polling_ ? 1 : 0);
  stats.blocked = blocked_;
  stats.initial = initial_;
  stats.maxThreads = max_;
  stats.cpuParallelism = cpus_;
  stats.started = started_;
  stats.exited = exited_;
  stats.startedInitial = startedFor_[static_cast<int>(StartReason::initial)];
  stats.startedForBlockingCalls = startedFor_[static_cast<int>(StartReason::blockingCall)];
  stats.startedForPresumedStuck = startedFor_[static_cast<int>(StartReason::presumedStuck)];
  stats.startedForGrowth = startedFor_[static_cast<int>(StartReason::growth)];
  stats.runnablePastGrace = runnablePastGrace_;
  stats.inGetEvent = ready_.waiting();
  return stats;
}

}  // namespace evchan::detail
