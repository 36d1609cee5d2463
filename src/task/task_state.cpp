// SPDX-License-Identifier: Apache-2.0
// TaskState: running, suspending, waking and ending a task.
#include "task/task_state.h"

#include <cstdio>
#include <cstdlib>
#include <map>

#include <evchan/error.h>
#include <evchan/system_error.h>

#include "apr/fork_hooks.h"
#include "channel/channel_core.h"
#include "channel/per_thread_access.h"
#include "posix/stack_overflow.h"
#include "task/await.h"
#include "task/channel_front.h"
#include "task/unhandled_exception.h"

namespace evchan::detail {
namespace {

std::atomic<TaskId> nextTaskId{1};

[[gnu::noinline]] TaskState*& currentTaskSlot() noexcept {
  freshPerThreadRead();
  static thread_local TaskState* current = nullptr;
  return current;
}

// The worker thread's own context, to switch into tasks from and back to
// (owned by the context layer: threadContext()).
[[gnu::noinline]] FiberContext& workerContext() {
  freshPerThreadRead();
  static thread_local FiberContext* context = nullptr;
  if (context == nullptr) {
    context = &threadContext();
    prepareStackOverflowReporting();
  }
  return *context;
}

// Stacks are pooled per size, process-wide, so that tasks of every channel
// reuse them; each thread remembers the pool it used last, to skip the
// lock, and keeps a few of its stacks (StackPool::acquireOnThread()), to
// skip the pool's.  The pools are never destroyed: a channel that static
// destruction tears down (a global or function-static one, built before the
// pools), or one destroyed in its own task whose workers finish after
// main() returned, still has tasks giving their stacks back after every
// static destructor has run.  Their stacks are reclaimed by the exit.
//
// A fork() finds every lock of theirs free: the forking thread takes them
// all just before, and releases them in both processes just after, so
// that a child's first task never waits for a lock that a thread left in
// the parent held.
struct StackPools {
  std::mutex mutex;
  std::map<std::size_t, std::unique_ptr<StackPool>> bySize;
};

StackPools& stackPools();

void lockStackPoolsForFork() {
  StackPools& pools = stackPools();
  pools.mutex.lock();
  for (auto& entry : pools.bySize) entry.second->lockForFork();
}

void unlockStackPoolsAfterFork() {
  StackPools& pools = stackPools();
  for (auto& entry : pools.bySize) entry.second->unlockAfterFork();
  pools.mutex.unlock();
}

StackPools& stackPools() {
  static StackPools* const pools = [] {
    auto* created = new StackPools;  // immortal, on purpose
    holdAcrossFork(&lockStackPoolsForFork, &unlockStackPoolsAfterFork);
    return created;
  }();
  return *pools;
}

StackPool& stackPoolFor(std::size_t size) {
  static thread_local StackPool* lastPool = nullptr;
  static thread_local std::size_t lastSize = 0;
  if (lastPool != nullptr && lastSize == size) return *lastPool;
  StackPools& pools = stackPools();
  std::lock_guard<std::mutex> lock(pools.mutex);
  std::unique_ptr<StackPool>& slot = pools.bySize[size];
  if (!slot) slot = std::make_unique<StackPool>(size);
  lastPool = slot.get();
  lastSize = size;
  return *slot;
}

}  // namespace

// Places the control block of the handles' shared_ptr in its task
// (TaskState::handleCount_).  shared_ptr destroys the block once the last
// handle (and weak reference) is gone, after its deleter ran, and then
// deallocates it: the task's end of the handles' reference, which may
// free the task, block storage included.
template <class T>
struct HandleCountAllocator {
  using value_type = T;
  explicit HandleCountAllocator(TaskState& owner) noexcept : task(&owner) {}
  template <class U>
  HandleCountAllocator(const HandleCountAllocator<U>& other) noexcept : task(other.task) {}
  T* allocate(std::size_t n) noexcept {
    static_assert(sizeof(T) <= TaskState::kHandleCountBytes && alignof(T) <= alignof(void*),
                  "TaskState::handleCount_ holds the handles' control block");
    (void)n;  // always 1: shared_ptr allocates one control block
    return reinterpret_cast<T*>(task->handleCount_);
  }
  void deallocate(T*, std::size_t) noexcept { task->handleCountGone(); }
  template <class U>
  bool operator==(const HandleCountAllocator<U>& other) const noexcept { return task == other.task; }
  template <class U>
  bool operator!=(const HandleCountAllocator<U>& other) const noexcept { return task != other.task; }

  TaskState* task;
};

void TaskResumeEvent::run() noexcept { task_.runOnWorker(); }

TaskState* TaskState::current() noexcept { return currentTaskSlot(); }

TaskState::TaskState(Private, std::shared_ptr<ChannelFront> front, std::unique_ptr<TaskFunction> function)
    : id_(nextTaskId.fetch_add(1, std::memory_order_relaxed)),
      front_(std::move(front)),
      core_(front_->core.get()),
      function_(std::move(function)) {}

TaskState::~TaskState() {
  // A task that never ran to its end (its spawn failed half-way).
  if (top_ != nullptr) TaskStackTop::destroy(top_);
  if (pool_ != nullptr) pool_->releaseOnThread(stack_);
}

void TaskState::spawn(const std::shared_ptr<ChannelFront>& front, std::unique_ptr<TaskFunction> function,
                      std::size_t stackSize, TaskHandle& handle, std::error_code& ec) {
  if (front->core->isShutDown()) {
    ec = Errc::channel_shut_down;
    return;
  }
  if (!function) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return;
  }
  auto task = std::make_shared<TaskState>(Private{}, front, std::move(function));
  TaskState& state = *task;
  state.pool_ = &stackPoolFor(stackSize);
  if ((ec = state.pool_->acquireOnThread(state.stack_))) return;
  state.top_ = TaskStackTop::make(state, state.stack_.usable, &TaskState::entry, &state);
  if (state.top_ == nullptr) {
    ec = std::make_error_code(std::errc::not_enough_memory);
    return;
  }
  // Every handle the user holds is a copy of this one: they share a count
  // of their own, whose end tells the task that nobody can join it any
  // more.  The count lives in the task (no allocation can fail here), and
  // the task's two references, its own (self_) and the handles', are the
  // spawn's one moved and one copy: each count change is an atomic
  // read-modify-write, a large part of an empty task's cost.
  state.self_ = task;
  state.handlesRef_ = std::move(task);
  handle = TaskHandle(std::shared_ptr<TaskState>(
      &state, [](TaskState* ended) { ended->lastHandleGone(); }, HandleCountAllocator<TaskState>(state)));
  if (!state.core_->scheduleUnlessShutDown(state.top_->resume())) {
    // shutdown() began since the look above: the task never runs.  Its
    // references go, and with the last one the task, its function and
    // its stack, here.
    handle = TaskHandle();
    std::shared_ptr<TaskState> last = std::move(state.self_);
    last.reset();
    ec = Errc::channel_shut_down;
    return;
  }
  ec.clear();
}

void TaskState::schedule() noexcept { core_->schedule(top_->resume()); }

void TaskState::entry(void* argument) {
  auto* task = static_cast<TaskState*>(argument);
  try {
    task->function_->run();
    task->function_.reset();  // its arguments die in the task, like its locals
  } catch (...) {
    task->exception_ = std::current_exception();  // join() rethrows it
    task->function_.reset();
  }
  task->destroyLocals();
  task->state_.store(kDone, std::memory_order_release);
  task->top_->fiber().exitTo(*task->worker_);
}

void TaskState::runOnWorker() noexcept {
  FiberContext& worker = workerContext();
  worker_ = &worker;
  currentTaskSlot() = this;
  setRunningStack(&stack_, id_);
  state_.store(kRunning, std::memory_order_relaxed);
  // The task's exceptions in flight (a catch block, an unwinding it
  // waited in) come with it, and go with it: the worker's are set aside.
  top_->exceptions().swapWithThread();
  worker.switchTo(top_->fiber());
  // Back on the worker's own stack.
  top_->exceptions().swapWithThread();
  setRunningStack(nullptr, 0);
  currentTaskSlot() = nullptr;
  if (!StackPool::canaryIntact(stack_)) {
    // An unguarded stack overflowed: its neighbour may be corrupt already.
    std::fprintf(stderr, "evchan: task stack overflow in task %llu (canary overwritten)\n",
                 static_cast<unsigned long long>(id_));
    std::abort();
  }
  if (state_.load(std::memory_order_acquire) == kDone) {
    finish();  // may free this task
    return;
  }
  if (std::exchange(yielding_, false)) {
    // Nobody else wakes a yielding task: straight back, behind the others.
    state_.store(kReady, std::memory_order_relaxed);
    core_->scheduleShared(top_->resume());
    return;
  }
  if (afterSwitch_ != nullptr) {
    void (*action)(void*) = std::exchange(afterSwitch_, nullptr);
    action(afterSwitchArgument_);
  }
  // Park it, unless a wake-up came while it was switching out.  Nothing may
  // touch the task after a successful park: another worker may resume it.
  int expected = kSuspending;
  if (state_.compare_exchange_strong(expected, kSuspended, std::memory_order_acq_rel)) return;
  state_.store(kReady, std::memory_order_relaxed);
  schedule();
}

void TaskState::suspend(void (*afterSwitch)(void*), void* argument) noexcept {
  callsWithoutSuspending_ = 0;
  afterSwitch_ = afterSwitch;
  afterSwitchArgument_ = argument;
  state_.store(kSuspending, std::memory_order_release);
  top_->fiber().switchTo(*worker_);
  // Resumed, perhaps on another worker: runOnWorker() set worker_ again.
}

void TaskState::yield() noexcept {
  yielding_ = true;
  suspend();
}

void TaskState::wake() noexcept {
  for (;;) {
    int state = state_.load(std::memory_order_acquire);
    if (state == kSuspended) {
      if (state_.compare_exchange_weak(state, kReady, std::memory_order_acq_rel)) {
        schedule();
        return;
      }
    } else if (state == kSuspending) {
      if (state_.compare_exchange_weak(state, kWokenWhileSuspending, std::memory_order_acq_rel)) return;
    } else {
      return;  // running or done: nothing to wake
    }
  }
}

void TaskState::finish() noexcept {
  TaskStackTop::destroy(std::exchange(top_, nullptr));
  pool_->releaseOnThread(stack_);
  pool_ = nullptr;
  bool report = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    done_.store(true, std::memory_order_release);
    // Under the lock: a joiner that this end does not wake leaves join()
    // (and its TaskJoiner) only after taking it.  One that it wakes is not
    // touched after its claim().
    for (TaskJoiner* joiner = std::exchange(joiners_, nullptr); joiner != nullptr;) {
      TaskJoiner* next = joiner->next;
      if (joiner->timer != nullptr) {
        joiner->finished.store(true);
        joiner->waiter.core().cancel(*joiner->timer);  // not yet posted: join() cancels it once it is
      } else {
        joiner->claim(TaskJoiner::kFinished);
      }
      joiner = next;
    }
    // Notified under the lock: each leaves join() only after taking it.
    for (ThreadJoiner* joiner = std::exchange(threadJoiners_, nullptr); joiner != nullptr;) {
      ThreadJoiner* next = joiner->next;
      joiner->done = true;
      joiner->finished.notify_one();
      joiner = next;
    }
    report = handlesGone_ && takeUnreportedException();
  }
  if (report) reportUnhandledException(*front_, id_, exception_);
  std::shared_ptr<TaskState> last = std::move(self_);  // may free this task on return
}

bool TaskState::done() const noexcept { return done_.load(std::memory_order_acquire); }

void TaskState::join() {
  TaskState* caller = current();
  if (caller == this) throw SystemError(std::make_error_code(std::errc::resource_deadlock_would_occur), "join");
  if (caller != nullptr) {
    if (!done()) {
      if (const std::error_code ended = joinInTask(*caller)) {
        throw SystemError(ended, ended == std::errc::timed_out ? "join (the task's deadline passed)" : "join");
      }
    }
  } else {
    ChannelCore::enterBlocking();
    {
      ThreadJoiner joiner;
      std::unique_lock<std::mutex> lock(mutex_);
      if (!done_.load(std::memory_order_relaxed)) {
        joiner.next = threadJoiners_;
        threadJoiners_ = &joiner;
        joiner.finished.wait(lock, [&] { return joiner.done; });
      }
    }
    ChannelCore::leaveBlocking();
  }
  if (exception_) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      exceptionObserved_ = true;
    }
    std::rethrow_exception(exception_);
  }
}

bool TaskState::cancel() noexcept {
  if (done()) return false;
  cancelRequested_.store(true, std::memory_order_seq_cst);
  std::lock_guard<std::mutex> lock(mutex_);
  cancelling_.store(true, std::memory_order_seq_cst);
  if (Event* wait = currentWait_.load(std::memory_order_seq_cst)) core_->cancel(*wait);
  if (TaskJoiner* join = currentJoin_.load(std::memory_order_seq_cst)) join->claim(TaskJoiner::kCancelled);
  if (InterruptibleWait* blocked = currentBlocking_.load(std::memory_order_seq_cst)) blocked->end();
  cancelling_.store(false, std::memory_order_release);
  return true;
}

void TaskState::setCurrentWait(Event* event) noexcept {
  currentWait_.store(event, std::memory_order_seq_cst);
  // A cancel() that read the event before this store may still be
  // cancelling it: its lock is held until it is done.
  if (event == nullptr && cancelling_.load(std::memory_order_seq_cst)) std::lock_guard<std::mutex> wait(mutex_);
}

void TaskState::setCurrentJoin(TaskJoiner* joiner) noexcept {
  currentJoin_.store(joiner, std::memory_order_seq_cst);
  if (joiner == nullptr && cancelling_.load(std::memory_order_seq_cst)) std::lock_guard<std::mutex> wait(mutex_);
}

void TaskState::setCurrentBlocking(InterruptibleWait* wait) noexcept {
  currentBlocking_.store(wait, std::memory_order_seq_cst);
  if (wait == nullptr && cancelling_.load(std::memory_order_seq_cst)) std::lock_guard<std::mutex> lock(mutex_);
}

void TaskState::handleCountGone() noexcept {
  std::shared_ptr<TaskState> last = std::move(handlesRef_);  // may free this task on return
}

void TaskState::lastHandleGone() noexcept {
  // Ended without an exception (the usual case, a joined task): nothing to
  // report and nobody left to tell.  exception_ was set before done_ was
  // published (release, under mutex_).
  if (done_.load(std::memory_order_acquire) && !exception_) return;
  bool report = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    handlesGone_ = true;
    report = done_.load(std::memory_order_relaxed) && takeUnreportedException();
  }
  if (report) reportUnhandledException(*front_, id_, exception_);
}

void leaveRunningTaskExceptionReportToGroup() noexcept {
  if (TaskState* task = TaskState::current()) task->leaveExceptionReportToGroup();
}

void TaskState::leaveExceptionReportToGroup() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  exceptionReported_ = true;
}

bool TaskState::takeUnreportedException() noexcept {
  if (!exception_ || exceptionObserved_ || exceptionReported_) return false;
  exceptionReported_ = true;
  return !isCancellation(exception_);
}

namespace {

// What parkJoiner() needs, on the joining task's stack.
struct JoinPark {
  TaskState* joined;
  TaskJoiner* joiner;
  bool cancellable;  // TaskHandle::cancel() of the caller ends the wait (not shielded)
};

void releaseParkedJoiner(ParkedTask& parked) noexcept {
  // The shutdown of the joiner's channel.
  static_cast<TaskJoiner&>(parked).claimLocked(TaskJoiner::kCancelled);
}

}  // namespace

bool TaskJoiner::claim(Outcome how) noexcept {
  // A claim that beat the shutdown's must have queued the waiter before
  // the shutdown lets the waiter's workers leave: after, the wake-up would
  // run it here, on another channel's worker or inside cancel() under its
  // lock.  The waiter leaves join() only after taking this lock (remove()),
  // so its channel outlives the unlock.
  std::unique_lock<std::mutex> lock = waiter.core().parkedTasks().lockForWake();
  return claimLocked(how);
}

bool TaskJoiner::claimLocked(Outcome how) noexcept {
  int expected = kWaiting;
  if (!outcome.compare_exchange_strong(expected, how, std::memory_order_acq_rel)) return false;
  waiter.wake();  // nothing may touch this joiner after it: the waiter may be gone
  return true;
}

std::error_code TaskState::joinInTask(TaskState& caller) {
  if (caller.deadline() != kNoDeadline) return joinInTaskUntil(caller);
  if (caller.cancelPending()) return std::make_error_code(std::errc::operation_canceled);
  TaskJoiner joiner(caller);
  joiner.release = &releaseParkedJoiner;
  JoinPark park{this, &joiner, !caller.shielded()};
  caller.suspend(&TaskState::parkJoiner, &park);
  // Woken by claim(): by this task's end, or the caller's cancel() or shutdown.
  if (park.cancellable) caller.setCurrentJoin(nullptr);
  caller.core().parkedTasks().remove(joiner);  // waits out a shutdown's release() of it
  if (joiner.outcome.load(std::memory_order_acquire) == TaskJoiner::kFinished) return {};
  std::lock_guard<std::mutex> lock(mutex_);
  unlinkJoiner(joiner);  // off the list before the TaskJoiner goes (finish() may still hold it)
  return std::make_error_code(std::errc::operation_canceled);
}

// On the worker, the caller suspending: a claim() may wake it from here on.
void TaskState::parkJoiner(void* argument) noexcept {
  auto& park = *static_cast<JoinPark*>(argument);
  TaskJoiner& joiner = *park.joiner;
  TaskState& caller = joiner.waiter;
  {
    std::lock_guard<std::mutex> lock(park.joined->mutex_);
    if (park.joined->done_.load(std::memory_order_relaxed)) {
      joiner.claim(TaskJoiner::kFinished);
      return;
    }
    if (!caller.core().parkedTasks().add(joiner)) {  // the caller's channel is shut down
      joiner.claim(TaskJoiner::kCancelled);
      return;
    }
    joiner.next = park.joined->joiners_;
    park.joined->joiners_ = &joiner;
  }
  if (!park.cancellable) return;
  // cancel() sets its flag before it looks for the wait: one of the two
  // sees the other.
  caller.setCurrentJoin(&joiner);
  if (caller.cancelPending()) joiner.claim(TaskJoiner::kCancelled);
}

std::error_code TaskState::joinInTaskUntil(TaskState& caller) {
  TimerEvent timer(kInfiniteTimeout);
  TaskJoiner joiner(caller);
  joiner.timer = &timer;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (done_.load(std::memory_order_relaxed)) return {};
    joiner.next = joiners_;
    joiners_ = &joiner;
  }
  // Parked like any wait in a task, so that the deadline, a cancel() and a
  // shutdown of the caller's channel end it: the timer is then cancelled,
  // or refused at post().  `finished` is checked once the timer is posted:
  // an end that came before could not cancel it yet.
  std::error_code ended;
  try {
    awaitInTask(timer, kInfiniteTimeout, ended, &joiner.finished);
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);  // no memory for the wait: it never started
    unlinkJoiner(joiner);
    throw;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (joiner.finished.load()) return {};
  unlinkJoiner(joiner);  // cancelled: off the list before the TaskJoiner goes
  return std::make_error_code(ended == std::errc::timed_out ? std::errc::timed_out : std::errc::operation_canceled);
}

void TaskState::unlinkJoiner(TaskJoiner& joiner) noexcept {
  for (TaskJoiner** link = &joiners_; *link != nullptr; link = &(*link)->next) {
    if (*link == &joiner) {
      *link = joiner.next;
      return;
    }
  }
}

void* TaskState::localSlot(std::uint64_t key, void* (*make)(), void (*destroy)(void*)) {
  if (!locals_) locals_ = std::make_unique<Locals>();
  for (auto& local : *locals_) {
    if (local.first == key) return local.second.first;
  }
  locals_->reserve(locals_->size() + 1);  // before make(): nothing to leak if it throws
  void* value = make();
  locals_->push_back({key, {value, destroy}});
  return value;
}

void TaskState::destroyLocals() noexcept {
  if (!locals_) return;
  // Newest first, like automatic variables; a destructor may create more.
  while (!locals_->empty()) {
    auto local = locals_->back();
    locals_->pop_back();
    local.second.second(local.second.first);
  }
  locals_.reset();
}

}  // namespace evchan::detail
