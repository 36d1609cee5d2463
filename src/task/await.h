// SPDX-License-Identifier: Apache-2.0
// Internal: how blocking-looking calls wait inside a task.
#ifndef EVCHAN_SRC_TASK_AWAIT_H
#define EVCHAN_SRC_TASK_AWAIT_H

#include <atomic>
#include <cstdint>
#include <system_error>

#include <evchan/duration.h>
#include <evchan/event.h>

#include "channel/parked_tasks.h"
#include "channel/socket_keeper.h"
#include "poller/deadline.h"

namespace evchan::detail {

/// Inside a task: posts `event` to the task's channel and suspends the task
/// (not the thread) until the event is back; with a finite `timeout` a
/// timer cancels it when the timeout passes first, and `result` is then
/// timed_out.  `result` is otherwise the event's error, or post()'s.
/// Returns false, doing nothing, outside a task (the caller blocks the
/// thread instead) and for a zero `timeout` (the caller's thread path tries
/// once and never waits).  Defined with the tasks, or (without them) to
/// return false.
///
/// `cancelled`, when given, is a flag another thread sets before it calls
/// ChannelCore::cancel(event): checked once the event is posted, so a
/// cancel that came too early to find the event still takes effect.
///
/// `taskCancel` says whether TaskHandle::cancel() ends the wait, and
/// whether the task's this_task::DeadlineScope does (`result` timed_out,
/// as for `timeout`).  Waits a
/// clean-up must be able to finish (taking a Mutex, from a destructor while
/// the cancellation unwinds the task) pass TaskCancel::ignored: only the
/// channel's shutdown ends them, and the task's cancellation stays pending
/// for its next cancellable wait.
///
/// `keeper`: SocketKeeper::caller when the wait is made inside a SocketCall
/// on the socket of `event` (a socket event), which keeps the socket alive
/// for the post.
enum class TaskCancel { honoured, ignored };
bool awaitInTask(Event& event, Duration timeout, std::error_code& result,
                 const std::atomic<bool>* cancelled = nullptr, TaskCancel taskCancel = TaskCancel::honoured,
                 SocketKeeper keeper = SocketKeeper::post);

class WaitCancellation;

/// awaitInTask() for a socket call, made inside its SocketCall on the
/// socket of `event` (SocketKeeper::caller): for as long as it waits, the
/// wait is registered with the socket's `cancellation`, so that a cancel()
/// or close() made since the call began (generation `startedAt`) ends it
/// with operation_canceled, also where it raced the timeout.  False,
/// doing nothing, where awaitInTask() would return false.  The
/// registration and the wait share one frame: a parked task's deepest
/// frames are what its wake-up finds cold.
bool awaitSocketInTask(Event& event, Duration timeout, std::error_code& result, WaitCancellation& cancellation,
                       std::uint64_t startedAt) noexcept;

/// Inside a task whose channel completes file operations itself (the aio
/// backend): posts the FileReadEvent or FileWriteEvent and suspends the
/// task until it is back, `result` its error.  False, doing nothing,
/// elsewhere: the caller does the IO itself (in a task, through
/// evchan::blocking()).
bool awaitFileInTask(Event& event, std::error_code& result);

/// Inside a task: one non-blocking try of a read, write or accept event's
/// operation through the task's channel, which knows from its readiness
/// hints when the socket is drained and then makes no syscall.  True when
/// the operation finished (`result` is its error, or why the channel could
/// not take the socket); false when it would block (awaitInTask() next),
/// and outside a task.  Made inside a SocketCall on the event's socket,
/// which keeps the socket alive (SocketKeeper::caller).
bool tryInTask(Event& event, std::error_code& result);

/// Inside a task, at the start of a socket call that may complete without
/// suspending (its data, or room, already there): after
/// TaskState::kCallsBeforeYield such calls in a row, the task yields first,
/// so that a peer that always has more to send cannot keep the other
/// tasks of its worker, the channel's polling, and the task's own
/// cancellation waiting.  That yield is a suspension point like
/// this_task::yield(): true, with `result` operation_canceled, when the
/// channel is shut down or TaskHandle::cancel() was called (unshielded),
/// and timed_out when the task's DeadlineScope has passed: the call ends
/// with `result`.  False, doing nothing, outside a task.
bool fairnessYield(std::error_code& result) noexcept;

/// A task's wait that holds its worker (under evchan::blocking()) because
/// it cannot be one event to suspend on (ShmListener::accept() polls its
/// listening socket and its pending clients together), and yet ends as a
/// suspended wait does: on the task's TaskHandle::cancel() (unless
/// shielded) and on its channel's shutdown.  Each calls end(), from its own
/// thread under its own lock, whose `interrupt` must make the blocked call
/// return without blocking or taking a lock (make readable a descriptor it
/// polls, say).  Lives on the task's stack from enterInterruptibleWait()
/// to leaveInterruptibleWait().
struct InterruptibleWait : ParkedTask {
  /// Ends the wait: `interrupted` is set, and `interrupt` called, once.
  void end() noexcept {
    if (!interrupted.exchange(true, std::memory_order_acq_rel)) interrupt(*this);
  }

  void (*interrupt)(InterruptibleWait& wait) noexcept = nullptr;
  /// Set by end(): the wait is to end with operation_canceled.
  std::atomic<bool> interrupted{false};
  /// The task's this_task::DeadlineScope (kNoDeadline: none), where the
  /// wait ends with timed_out as the task's other waits do.
  Deadline taskDeadline = kNoDeadline;
};

/// Inside a task: registers `wait` (its `interrupt` set) with the task and
/// its channel, and fills in its taskDeadline.  Empty when the wait may
/// begin; operation_canceled when the task's cancellation is pending, and
/// Errc::channel_shut_down when its channel has shut down (as a post after
/// the shutdown is): nothing is registered then.  A cancel() that comes
/// between the two checks ends the wait at once (end()).
std::error_code enterInterruptibleWait(InterruptibleWait& wait) noexcept;
/// Unregisters the `wait` that enterInterruptibleWait() admitted; once it
/// returns, nothing calls end() on it, and no call is still inside.
void leaveInterruptibleWait(InterruptibleWait& wait) noexcept;

/// Inside a task on a worker of its own channel: re-queues the task behind
/// the ready ones, as this_task::yield() does, and does so also while the
/// channel shuts down, when this_task::yield() throws.  For a wait that
/// the shutdown itself must see end: a close() waiting for calls whose
/// tasks are queued on this same worker.  False, doing nothing, elsewhere
/// (a task resumed on another thread once the pool has gone: a yield
/// there would resume it on that same thread, inside this call).
bool yieldThroughShutdown() noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_TASK_AWAIT_H
