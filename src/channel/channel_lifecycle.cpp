// SPDX-License-Identifier: Apache-2.0
// ChannelCore's life: creation, shutdown (cancelling what is pending,
// releasing blocked waiters, joining the pool) and destruction.
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <thread>
#include <utility>
#include <vector>

#include <evchan/error.h>

#include "apr/cpu_parallelism.h"
#include "channel/channel_core.h"

namespace evchan::detail {

std::shared_ptr<ChannelCore> ChannelCore::create(const EventChannelOptions& options, std::error_code& ec,
                                                 int* threadsStarted) {
  if (options.initialThreads < 0 || options.maxThreads < 0 || options.idleTimeout < Duration::zero() ||
      options.stuckWorkerGrace < Duration::zero() ||
      (options.maxThreads > 0 && options.initialThreads > options.maxThreads)) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return nullptr;
  }
  std::shared_ptr<ChannelCore> core(new ChannelCore(options, detectCpuParallelism()));
  if (core->initial_ > core->max_) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return nullptr;
  }
  core->poller_ = createPoller(options.backend, ec);
  if (!core->poller_) return nullptr;
  core->backend_ = core->poller_->kind();
  core->completion_ = core->poller_->completions();
  core->completesFiles_ = core->poller_->completesFileOperations();
  // Before the workers: they report to it.  Without it the pool still
  // compensates for the blocking calls it is told about.
  if (core->monitored_) {
    core->monitorRunning_ = core->monitor_.start();
    if (!core->monitorRunning_) std::fprintf(stderr, "evchan: no thread for the stuck-worker monitor\n");
  }
  int started = 0;
  {
    std::lock_guard<std::mutex> lock(core->mutex_);
    core->startReason_ = StartReason::initial;
    for (int i = 0; i < core->initial_ && core->threads_ == i; ++i) core->startWorkerLocked();
    core->startReason_ = StartReason::growth;
    started = core->threads_;
  }
  if (threadsStarted != nullptr) *threadsStarted = started;
  if (started < core->initial_) {
    // A pool short of what was asked would be reported as complete: stop
    // and join the workers that did start.
    core->shutdown();
    ec = std::make_error_code(std::errc::resource_unavailable_try_again);
    return nullptr;
  }
  ec.clear();
  return core;
}

ChannelCore::ChannelCore(const EventChannelOptions& options, int cpus)
    : options_(options),
      cpus_(cpus),
      initial_(options.initialThreads > 0 ? options.initialThreads : cpus),
      max_(options.maxThreads > 0 ? options.maxThreads
                                  : std::min(kMaxWorkerThreads, std::max(64, initial_ > INT_MAX / 16 ? INT_MAX : 16 * initial_))),
      monitored_(options.stuckWorkerGrace > Duration::zero()),
      monitor_(options.stuckWorkerGrace, [this] { return markStuckWorkers(); }) {}

ChannelCore::~ChannelCore() {
  shutdown();
  releaseHeldEvents();
  // Only a worker can be running here: the last reference was its own.
  for (std::thread& worker : workers_) {
    if (worker.get_id() == std::this_thread::get_id()) worker.detach(); else if (worker.joinable()) worker.join();
  }
  // watches_, destroyed first among the members, deletes the watches left.
}

void ChannelCore::shutdown() noexcept {
  bool first = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stopping_) {
      stopping_ = true;
      noteBatchesAloneLocked();
      shutDown_.store(true);  // sequentially consistent: see completionQueued()
      first = true;
    }
  }
  // Only the first caller sweeps: the sweep uses the poller without
  // watches_.mutex(), which is safe only while the workers, which cannot
  // leave before it is done, keep the poller from being deleted.  Later
  // callers go straight to waiting for the workers.
  if (first) {
    // Listed before the sweep hands anything back: from now on an event
    // it holds for getEvent() may be destroyed (see forgetHeldEvent()).
    ready_.listAsShutDown();
    sweepForShutdown();
  }
  if (currentWorkerChannel() == this) return;  // a worker cannot join itself; the last one closes up

  // One caller at a time joins the pool and deletes the poller; the next
  // finds nothing left to do.
  std::lock_guard<std::mutex> closing(closingMutex_);
  std::vector<std::thread> workers;
  for (;;) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (workersGone_.wait_for(lock, std::chrono::milliseconds(100), [&] { return threads_ == 0; })) {
      workers.swap(workers_);
      break;
    }
    lock.unlock();
    // The poller may have missed the wake-up: Wine's WSAPoll, under APR's
    // pollset, was seen sleeping on through it.  Another costs nothing.
    std::lock_guard<std::mutex> watches(watches_.mutex());
    if (poller_) poller_->wakeup();
  }
  for (std::thread& worker : workers) {
    // The last reference may be dropped by an exiting worker itself.
    if (worker.get_id() == std::this_thread::get_id()) worker.detach(); else if (worker.joinable()) worker.join();
  }
  ready_.close();
  std::lock_guard<std::mutex> lock(watches_.mutex());
  poller_.reset();  // closes the backend's descriptors
}

void ChannelCore::sweepForShutdown() noexcept {
  monitor_.stop();  // no spare threads during a shutdown anyway
  {
    // Before anything is cancelled: a poll's batch of cancelled operations
    // is shared at once, since nothing now catches a first item that waits
    // for the others (see workerMain()).
    std::lock_guard<std::mutex> lock(mutex_);
    monitorRunning_ = false;
    noteBatchesAloneLocked();
  }
  // Cancel what is parked on sockets and timers.
  std::vector<Event*> cancelled;
  {
    std::lock_guard<std::mutex> lock(watches_.mutex());
    for (Watch* watch = watches_.firstLiveLocked(); watch != nullptr; watch = watch->next) {
      std::lock_guard<std::mutex> watchLock(watch->mutex);
      if (completion_ != nullptr && poller_) {
        // Completed with operation_canceled by the kernel's completions,
        // which the workers keep polling for before they exit.
        if (watch->reader != nullptr) completion_->cancel(*watch, kReadable);
        if (watch->writer != nullptr) completion_->cancel(*watch, kWritable);
        continue;
      }
      for (Event** slot : {&watch->reader, &watch->writer}) {
        if (*slot != nullptr) cancelled.push_back(std::exchange(*slot, nullptr));
      }
      if (poller_ && !poller_->edgeTriggered()) poller_->setInterest(*watch, 0);
    }
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    timers_.takeAllLocked(cancelled);
  }
  resolver_.close(cancelled);  // lookups under way finish unseen
  // Completed as complete() would, but queued for the workers in one batch:
  // one lock and one wake-up for them all, not one each (100,000 parked
  // tasks are 100,000 timers).
  EventQueue batch;
  for (Event* event : cancelled) {
    if (event->kind() == Event::Kind::Connect) EventAccess::connected(static_cast<ConnectEvent&>(*event)).close();
    EventAccess::error(*event) = std::make_error_code(std::errc::operation_canceled);
    if (EventAccess::callback(*event)) {
      batch.push(*event);
    } else {
      deliver(*event);
    }
  }
  scheduleBatch(batch);
  parkedTasks_.releaseAll();
  // File IO the backend performs comes back (cancelled where it had not
  // started) while the workers are still there to deliver it.
  if (poller_) poller_->drainFileOperations();
  releaseWaiters();

  // Wake everyone: idle workers, the poller, getEvent() callers.  Only now
  // may workers leave: the cancelled events above are queued, and a task
  // they resume runs on a worker, never on the thread that cancelled it.
  {
    std::lock_guard<std::mutex> lock(mutex_);
    swept_ = true;
    workAvailable_.notify_all();
  }
  // A worker of this channel waiting in getEvent() (a callback's call)
  // leaves it now: its pool is going (shutDown_ is its stop flag).
  ready_.wakeWaiters();
  std::lock_guard<std::mutex> lock(watches_.mutex());
  if (poller_) poller_->wakeup();
}

bool ChannelCore::isShutDown() const noexcept { return shutDown_.load(std::memory_order_acquire); }

void ChannelCore::trackWaiter(NotifyEvent* event, bool waiting) noexcept {
  std::lock_guard<std::mutex> lock(waitersMutex_);
  if (waiting) {
    waiters_.push_back(event);
    // A worker that starts waiting after shutdown() released the waiters
    // it knew (a callback run during the shutdown, say) would otherwise
    // keep the pool from ever being joined.  shutDown_ is set before
    // releaseWaiters() takes this lock, so one of the two releases it.
    if (shutDown_.load(std::memory_order_acquire)) EventAccess::signal(*event, false);
  } else {
    auto it = std::find(waiters_.begin(), waiters_.end(), event);
    if (it != waiters_.end()) waiters_.erase(it);
  }
}

void ChannelCore::releaseWaiters() noexcept {
  std::lock_guard<std::mutex> lock(waitersMutex_);
  for (NotifyEvent* event : waiters_) EventAccess::signal(*event, false);
}

}  // namespace evchan::detail
