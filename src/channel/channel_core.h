// SPDX-License-Identifier: Apache-2.0
// Internal: the shared state behind an EventChannel.
#ifndef EVCHAN_SRC_CHANNEL_CHANNEL_CORE_H
#define EVCHAN_SRC_CHANNEL_CHANNEL_CORE_H

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <evchan/event_channel.h>
#include <evchan/notify_event.h>
#include <evchan/timer_event.h>

#include "apr/socket_state.h"
#include "poller/event_access.h"
#include "channel/io_attempts.h"
#include "poller/poller.h"
#include "channel/parked_tasks.h"
#include "channel/stuck_worker_monitor.h"
#include "channel/ready_queue.h"
#include "channel/resolver_threads.h"
#include "channel/socket_keeper.h"
#include "channel/timer_set.h"
#include "channel/watch_table.h"

namespace evchan::detail {

/// Everything an EventChannel is.  Sockets registered with the channel keep
/// it alive through shared_ptr, so closing a socket after the channel is
/// gone is safe; the pool and the poller end at shutdown().
///
/// Its parts, one file each:
///   channel_core.cpp         posting events by kind, trying and cancelling them
///   channel_delivery.cpp     completing events: a callback on a worker, or
///                            held for getEvent() (ReadyQueue, ready_queue.h)
///   channel_polling.cpp      one poll of the backend and the timers
///                            (TimerSet, timer_set.h); registering sockets
///                            (WatchTable, watch_table.h)
///   channel_completions.cpp  the completion path (io_uring)
///   channel_workers.cpp      the pool: workers, the run queue, blocking calls
///   channel_lifecycle.cpp    creation, shutdown and destruction
///
/// The lock order, written down here once (the parts' headers refer to
/// it).  A thread holding a lock may take only locks further down its line:
///   closingMutex_ > watches_.mutex() > Watch::mutex > mutex_
///   closingMutex_ > the ReadyQueue's mutex
///   the ReadyQueue's process-wide list of shut-down queues > a ReadyQueue's mutex
///   waitersMutex_ > a NotifyEvent's mutex
///   resolver_'s lock > mutex_, and > the ReadyQueue's mutex (resolver_threads.h)
///   a ShmConnection's cancelLock > a socket's WaitCancellation mutex (a ShmStream's
///     cancel() cancels its two doorbell sockets under it)
///   a socket's WaitCancellation mutex > cancel()'s locks (src/apr/wait_cancellation.h:
///     cancelling a task's wait cancels its event under it)
///   a TaskState's mutex_ > cancel()'s locks (TaskHandle::cancel(); a task's end cancels
///     the timers of its joiners with a deadline)
///   a TaskState's mutex_ > parkedTasks()'s lock > mutex_ (a join() lists itself under
///     the joined task's lock; the shutdown wakes what is listed, and the joined task's
///     end and cancel() wake a listed joiner, under it)
/// where cancel()'s locks are watches_.mutex() > Watch::mutex for a socket
/// event, mutex_ for a timer, resolver_'s lock for a ResolveEvent.
/// mutex_ and the ReadyQueue's mutex are never held together.  The
/// backends' own locks come after all of these: a backend calls back into
/// the channel (operationCompleted) with none of them held.
/// watches_.mutex() also keeps poller_ from being deleted: poller_ is used
/// under it where a shutdown may end the poller meanwhile.
class ChannelCore final : public std::enable_shared_from_this<ChannelCore>, private CompletionSink {
 public:
  /// `threadsStarted`, when given, receives how many workers started.
  static std::shared_ptr<ChannelCore> create(const EventChannelOptions& options, std::error_code& ec,
                                             int* threadsStarted = nullptr);
  ~ChannelCore();

  /// `wakesTask`: the event's callback only wakes the task waiting for
  /// it (awaitInTask()); complete() may then run it at once.  Recorded
  /// in the event here, on every post, so an event never carries the mark
  /// from elsewhere (code built against headers without the field leaves
  /// its byte unset).
  /// `keeper`: see SocketKeeper.
  std::error_code post(Event& event, bool wakesTask = false, SocketKeeper keeper = SocketKeeper::post) noexcept;
  Event* getEvent(Duration timeout);
  void shutdown() noexcept;
  bool isShutDown() const noexcept;
  Backend backend() const noexcept { return backend_; }
  std::size_t taskStackSize() const noexcept { return options_.taskStackSize; }
  /// The backend performs file events itself (aio): a task waits for them
  /// suspended, instead of through evchan::blocking().
  bool completesFileOperations() const noexcept;
  ThreadPoolStats stats() const;

  /// Cancels an event in flight that is still waiting: a socket event
  /// parked on its socket, or a pending timer.  It completes with
  /// std::errc::operation_canceled; true then.  False when the event is
  /// not waiting (already completing, or a kind that never waits).
  bool cancel(Event& event) noexcept;
  /// CancellableWait::cancelTask of a task's wait for an event: cancel()
  /// of `wait.event` (an Event) on `wait.channel` (a ChannelCore).  The
  /// wait checks its flag once the event is posted, so that a cancel that
  /// comes before still ends it.
  static void cancelWaitedEvent(CancellableWait& wait) noexcept;

  /// One non-blocking try of a read, write or accept event's operation, as
  /// post() makes it, without parking or completing the event: done false
  /// means it would block (post it to wait).  Keeps the readiness hints:
  /// on a socket known to be drained it makes no syscall and takes no
  /// lock.  `ec`: the socket cannot be used with this channel now (post()'s
  /// errors; a drained socket leaves them to the post).  Made inside a
  /// SocketCall on the event's socket, which keeps the socket alive
  /// (SocketKeeper::caller): nothing is pinned here.
  AttemptResult tryOnce(Event& event, std::error_code& ec) noexcept;

  /// Queues `event` to run on a worker (its callback, or the task it
  /// resumes): on this worker's local batch when there is one.
  void schedule(Event& event) noexcept;
  /// schedule() for what a caller starts, not a completion the channel
  /// owes (a new task's first run, an event post() completes at once),
  /// unless shutdown() has begun: false then, and `event` is not queued.
  /// Checked under mutex_, so what is started as the pool leaves is
  /// refused, never run by the calling thread (which scheduleShared()
  /// would do once the pool is gone).  A worker of this channel queues it
  /// on its local batch, which it runs before it leaves.
  bool scheduleUnlessShutDown(Event& event) noexcept;
  /// complete() for an event post() completes at once (a zero-delay
  /// timer, a numeric lookup), through scheduleUnlessShutDown():
  /// Errc::channel_shut_down, the event not completed, once shutdown()
  /// has begun.
  std::error_code completeAtPost(Event& event, std::error_code result) noexcept;
  /// schedule() with mutex_ held.
  void scheduleLocked(Event& event) noexcept;
  /// Queues `event` at the tail of the shared run queue, never on the local
  /// batch: behind every event ready now (a yielding task).  Without
  /// `wake`, nobody is woken for it (see spillQuietly()).
  void scheduleShared(Event& event, bool wake = true) noexcept;
  /// Queues every event of `batch` at the shared run queue's tail under one
  /// lock, with one wake-up (shutdown's cancelled events); `batch` ends empty.
  void scheduleBatch(EventQueue& batch) noexcept;
  /// scheduleShared()'s queueing and wake-up, with `lock` (on mutex_)
  /// held; returns with it released.
  void queueSharedLocked(Event& event, bool wake, std::unique_lock<std::mutex>& lock) noexcept;
  /// Shares what this worker has queued on its local batch (to run once
  /// the current item ends) with the idle workers: for a task that has
  /// just resumed another (handed it a turn) and goes on running.  Does
  /// nothing on any other thread, nor while runsBatchAlone() (nobody
  /// could take it).
  void shareLocalBatch() noexcept;

  /// Registers a socket with the poller (WatchHandle calls these).
  Watch* addWatch(apr_socket_t* socket, std::error_code& ec);
  /// Cancels the watch's pending events and unregisters it; the memory is
  /// reclaimed once no poll can still report it.
  void retireWatch(Watch* watch) noexcept;

  /// The channel whose worker is running on this thread, or null.  Not
  /// inlined, so the thread-local's address is never cached across a
  /// suspension (tasks migrate between threads).
  static ChannelCore* currentWorkerChannel() noexcept;

  /// Brackets a call that blocks a worker thread (NotifyEvent::wait,
  /// getEvent on a worker, evchan::blocking()): the pool starts a spare
  /// thread if nobody else can poll or run queued work.  The stuck-worker
  /// monitor leaves the worker alone meanwhile.  No-ops on other threads.
  static void enterBlocking() noexcept;
  static void leaveBlocking() noexcept;
  /// Remembers a NotifyEvent a worker waits on, to release it at shutdown.
  void trackWaiter(NotifyEvent* event, bool waiting) noexcept;
  /// The tasks suspended on no event (join()), which the shutdown wakes.
  ParkedTasks& parkedTasks() noexcept { return parkedTasks_; }

  /// The EventChannel is gone (after its shutdown()): nobody can take the
  /// completed events held for getEvent() any more.  Hands every one back
  /// (no longer in flight, its result kept), and so every event that
  /// completes later.  Idempotent.
  void releaseHeldEvents() noexcept;
  /// For ~Event of an event in flight: when a shut-down channel only holds
  /// it for getEvent(), takes it out of that queue and hands it back; true
  /// then (or when it was handed back meanwhile).  False: the channel may
  /// still use it.
  static bool forgetHeldEvent(Event& event) noexcept;

 private:
  explicit ChannelCore(const EventChannelOptions& options, int cpus);

  // Posting, by kind (channel_core.cpp).
  /// The readiness a level-triggered poller watches `watch` for: what its
  /// parked events wait for.
  static unsigned interestOf(const Watch& watch) noexcept {
    return (watch.reader != nullptr ? kReadable : 0u) | (watch.writer != nullptr ? kWritable : 0u);
  }
  std::error_code postSocketEvent(Event& event, SocketKeeper keeper) noexcept;
  /// Why a socket event cannot use `watch` now (closing, shut down, busy).
  std::error_code checkSlotLocked(Watch& watch, bool isReader) const noexcept;
  /// One try of the event's operation, with watch.mutex held, skipping the
  /// syscall when an edge-triggered poller's hint says it would block.
  AttemptResult attemptLocked(Event& event, Watch& watch, bool isReader) noexcept;
  std::error_code postConnect(ConnectEvent& event) noexcept;
  std::error_code postTimer(TimerEvent& event) noexcept;
  std::error_code postNotify(NotifyEvent& event) noexcept;
  std::error_code postDispatch(DispatchEvent& event) noexcept;
  std::error_code postFileEvent(Event& event) noexcept;
  std::error_code postResolve(ResolveEvent& event) noexcept;

  // Completion (channel_delivery.cpp).
  /// Records `result` and hands the event on: to a worker when it has a
  /// callback, else to ready_ for getEvent().
  void complete(Event& event, std::error_code result) noexcept;
  void deliver(Event& event) noexcept;
  void runCompletion(Event& event) noexcept;
  /// A file event's IO on this worker, counted as blocked.
  void performFileOperation(Event& event) noexcept;
  /// The backend's hand-back of a file event it performed.
  void operationCompleted(Event& event, std::error_code result) noexcept override;

  // Polling (channel_polling.cpp).
  void handleReadiness(const Readiness& readiness) noexcept;
  void pollOnce(Deadline deadline) noexcept;
  void freeRetiredWatches() noexcept;

  // The completion path (channel_completions.cpp): a backend whose kernel
  // performs the operations (io_uring).  Null completion_: readiness.
  /// Hands the socket event in `slot` (kReadable/kWritable) of `watch` to
  /// the kernel; with watch.mutex held.
  std::error_code submitLocked(Event& event, Watch& watch, unsigned slot) noexcept;
  std::error_code submitOperationLocked(Event& event, Watch& watch, unsigned slot, const SocketOperation& op) noexcept;
  /// Wraps the descriptor an accept completed with; with listener.mutex held.
  std::error_code adoptConnection(AcceptEvent& event, Watch& listener, int fd) noexcept;
  std::error_code postConnectToRing(ConnectEvent& event) noexcept;
  bool cancelInRing(Event& event, Watch& watch) noexcept;
  void retireRingWatch(Watch* watch) noexcept;
  void pollCompletions(Deadline deadline) noexcept;
  void handleCompletion(const Completion& completion) noexcept;
  /// Operations are in the kernel: workers keep polling through a shutdown.
  bool ringBusy() const noexcept { return completion_ != nullptr && completion_->busy(); }
  /// cancel() or post() has queued the event it counted in
  /// completionsUnderWay_.
  void completionQueued() noexcept;
  /// For an event post() completes at once on a thread that is not one of
  /// this channel's workers: counts it in completionsUnderWay_ (so that
  /// the pool stays until complete() has queued it, and the callback never
  /// runs on the posting thread), or false when shutdown() has begun.
  bool keepPoolForCompletion() noexcept;
  /// keepPoolForCompletion() for a socket event done inside post(), with
  /// its watch's lock held (where the check for a shutdown was made);
  /// true when it counted the event.
  bool countCompletionAtPostLocked(Event& event) noexcept;

  // The pool (channel_workers.cpp).  `Locked` functions need mutex_ held.
  void startWorkerLocked() noexcept;
  void workerMain() noexcept;
  void enqueueLocked(Event& event) noexcept;
  /// Queues a completion on this worker's local batch when it has one (no
  /// lock: the worker runs it next); false when the caller must enqueue it.
  bool enqueueLocal(Event& event) noexcept;
  /// Whether enqueueLocal() would take one more event now.
  bool localBatchHasRoom() noexcept;
  /// After enqueueLocal() refused: true the first time this worker's local
  /// batch is full.  That event then goes to the shared queue without a
  /// wake-up: the batch is full, so this worker ends its chain and comes
  /// back to the shared queue right after the current item, and tasks that
  /// wake one another (a spawn and its join) stay on its CPU instead of
  /// moving to the poller, woken through eventfd.  Later refusals wake as
  /// usual, so a burst of work still spreads over the pool.
  bool spillQuietly() noexcept;
  /// Moves a local batch to the shared run queue, waking idle workers.
  void publishLocal(LocalBatchQueue& batch) noexcept;
  /// Runs `first`, then what its callback completed on this thread (the
  /// local batch, with what a poll completed when the caller put it
  /// there).  While runsBatchAlone(), the rest of the batch is never
  /// shared: nobody could take it, and publishing it would cost a lock of
  /// mutex_ per item.  Returns how many items after `first` it ran so.
  int runWithLocalBatch(Event& first, WorkerActivity& activity) noexcept;
  /// The pool's only worker, watched by the monitor, not shutting down:
  /// it keeps its local batch (see batchesAlone_).  Any thread, any time.
  bool runsBatchAlone() const noexcept { return batchesAlone_.load(std::memory_order_relaxed); }
  /// Sets batchesAlone_ after a change of what it depends on; mutex_ held.
  void noteBatchesAloneLocked() noexcept;
  /// Brackets one item a worker runs, for the stuck-worker monitor.
  void beginItem(WorkerActivity& activity) noexcept;
  void endItem(WorkerActivity& activity) noexcept;
  /// The monitor's tick: presumes blocked the workers busy with one item
  /// for longer than the grace period while work waits for a worker, and
  /// compensates for them.  True while some worker is busy.
  bool markStuckWorkers() noexcept;
  /// With `notifyLater`, an idle worker to wake is not notified but
  /// counted there: the caller notifies after unlocking mutex_, so that the
  /// woken worker does not find the lock still held.
  void dispatchWorkLocked(int* notifyLater = nullptr) noexcept;
  bool wakeIdleLocked(int* notifyLater = nullptr) noexcept;
  /// Makes the poll under way return, once per poll (mutex_ held).
  void wakePollerLocked() noexcept;
  void reapExitedLocked() noexcept;

  // Shutdown (channel_lifecycle.cpp).
  void releaseWaiters() noexcept;
  /// shutdown()'s first caller: cancels what is pending and lets the
  /// workers go.
  void sweepForShutdown() noexcept;

  const EventChannelOptions options_;
  const int cpus_;
  const int initial_;
  const int max_;
  Backend backend_ = Backend::Default;
  std::unique_ptr<Poller> poller_;
  CompletionPoller* completion_ = nullptr;  // poller_'s, when it completes operations
  bool completesFiles_ = false;             // poller_'s answer, kept: poller_ ends at shutdown
  std::vector<Readiness> readyBatch_;       // the polling thread's
  std::vector<Completion> completedBatch_;  // the polling thread's
  std::atomic<bool> shutDown_{false};

  // Pool, run queue and timers.
  mutable std::mutex mutex_;
  std::condition_variable workAvailable_;
  std::condition_variable workersGone_;
  EventQueue runQueue_;
  TimerSet timers_;  // its members need mutex_
  bool polling_ = false;
  bool pollWoken_ = false;  // the poller was woken during this poll: once is enough
  Deadline pollDeadline_ = kNoDeadline;
  // Items run since the backend was last polled: from the run queue, and
  // what a worker alone kept instead of queueing (see runsBatchAlone(),
  // but not a poll's own batch); at kRunsBetweenPolls a worker polls
  // (without waiting) before the next.
  static constexpr int kRunsBetweenPolls = 64;
  int runsSincePoll_ = 0;
  // About what waking an idle worker costs before it runs anything (a
  // futex wake and a context switch: tens of microseconds on a virtual
  // machine).  A poll's completions that the polling worker will have run
  // sooner are not shared: the helper would arrive when they are done,
  // and would have taken a CPU from whatever else wanted it.  A backlog
  // that lasts longer is, as soon as that is known.
  static constexpr Duration kHelpAfter = std::chrono::microseconds(50);
  // Sharing a poll's completions with idle workers (see workerMain()).
  // backlogSince_: when the run queue last got a batch of completions no
  // helper has been woken for yet (kNoDeadline: none).  lastBatchAt_:
  // when the last batch was queued, until the next poll measures from it
  // what an item costs, itemCost_ (a moving average; it starts high, so
  // that helpers are woken at once until items are seen to be short).
  Deadline backlogSince_ = kNoDeadline;
  Deadline lastBatchAt_ = kNoDeadline;
  Duration itemCost_ = kHelpAfter;
  bool stopping_ = false;
  bool swept_ = false;  // shutdown() has cancelled what was pending: workers may exit
  // Socket events that cancel() has taken off their watch, resolve events
  // it has taken from the resolver, and events post() completed at once on
  // a thread other than a worker, not yet queued: the workers stay for
  // them (see cancel() and postSocketEvent()).
  std::atomic<int> completionsUnderWay_{0};
  int threads_ = 0;
  // threads_ == 1 && monitorRunning_ && !stopping_, kept so (under mutex_)
  // by noteBatchesAloneLocked() for a worker that checks it between the
  // items of its batch without the lock.  Nobody could take a share of
  // such a worker's batch; should an item block, the monitor moves the
  // rest to the run queue and starts a spare worker (within maxThreads).
  std::atomic<bool> batchesAlone_{false};
  int idle_ = 0;
  int wakeups_ = 0;  // idle workers notified and not yet awake
  int blocked_ = 0;
  int peak_ = 0;
  std::uint64_t started_ = 0;
  std::uint64_t exited_ = 0;
  std::vector<std::thread> workers_;  // running or exited, not yet joined
  std::vector<std::thread::id> exitedIds_;
  std::vector<WorkerActivity*> activities_;  // one per live worker
  const bool monitored_;                     // stuckWorkerGrace > 0
  // The monitor's thread runs (set before the workers start, cleared by
  // the shutdown's sweep, which stops it): only then may a short-looking
  // batch wait for its tick (see workerMain()).
  bool monitorRunning_ = false;
  // Threads started per reason (ThreadPoolStats); startReason_ is the
  // reason for a start now, set around the calls that may start one.
  std::uint64_t startedFor_[kStartReasons] = {};
  StartReason startReason_ = StartReason::growth;
  std::uint64_t runnablePastGrace_ = 0;
  std::vector<StuckCandidate> stuckCandidates_;  // the monitor thread's own
  StuckWorkerMonitor monitor_;

  // NotifyEvents that workers wait on, released at shutdown.
  std::mutex waitersMutex_;
  std::vector<NotifyEvent*> waiters_;

  ParkedTasks parkedTasks_;

  // Completed events without callbacks, for getEvent().
  ReadyQueue ready_;

  // Where ResolveEvents wait for the system resolver.
  ResolverThreads resolver_{*this};

  // Serialises shutdown()'s joining of the pool and deleting of the poller.
  std::mutex closingMutex_;

  // Registered sockets.  Last: destroyed first, right after ~ChannelCore,
  // before the poller.
  WatchTable watches_;
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_CHANNEL_CHANNEL_CORE_H
