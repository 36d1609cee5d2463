// SPDX-License-Identifier: Apache-2.0
// Internal: the tasks of one socket that take turns at their channel's
// waiting slot (accepts, datagram receives and sends).
#ifndef EVCHAN_SRC_APR_TASK_TURNS_H
#define EVCHAN_SRC_APR_TASK_TURNS_H

#include <atomic>
#include <mutex>

#include "apr/wait_cancellation.h"

namespace evchan::detail {

/// One task's call in TaskTurns, on the task's stack while the call lasts.
struct TurnTaker {
  /// The task's channel: each channel keeps its own slot on the socket, so
  /// only the takers of the same channel and direction share a turn.
  const void* channel = nullptr;
  bool writer = false;
  /// Waiting for its turn (else inside: its event is posted, or about to
  /// be).  Stays set when the wait ends without the turn.
  bool waiting = false;
  /// Set by the call that left before it, with `waiting` cleared: this one
  /// goes in.
  bool woken = false;
  /// The parked wait (while `waiting`): cancelling it resumes the task.
  CancellableWait* wait = nullptr;
  TurnTaker* next = nullptr;
  TurnTaker* previous = nullptr;
};

/// Lives in a SocketState: the takers in arrival order, under `mutex`.  Of
/// the takers of one channel and direction one at a time is inside, its
/// event posted; the others wait, and the first of them goes in when it
/// leaves.  A call that finds no other joins, goes in and leaves: two
/// short critical sections on a call that waits in the kernel anyway.
struct TaskTurns {
  std::mutex mutex;
  TurnTaker* first = nullptr;
  TurnTaker* last = nullptr;
  /// How many takers are queued (written under `mutex`): a call that would
  /// try the socket before it queues (a datagram receive) and finds others
  /// queues at once, so as not to take a datagram ahead of them.
  std::atomic<int> takers{0};
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_TASK_TURNS_H
