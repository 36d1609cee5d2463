// SPDX-License-Identifier: Apache-2.0
// SocketCall: a task's wait that cancel() ends, and the turns the tasks of
// one channel take at a socket they share; cancel() and close().
#include "net/socket_call.h"

#include <apr_errno.h>

#include <algorithm>

#include <evchan/error.h>
#include <evchan/timer_event.h>

#include "channel/channel_core.h"
#include "net/close_wait.h"
#include "sync/waiter.h"
#include "task/await.h"

namespace evchan::detail {
namespace {

// Which calls take turns: those that several tasks of a server make on one
// socket at once (accepting on a listener, receiving or sending on a
// datagram socket).  A stream's reads or writes from two tasks would
// interleave their bytes: those stay socket_busy.
bool takesTurns(const Event& event) noexcept {
  switch (event.kind()) {
    case Event::Kind::Accept:
    case Event::Kind::DatagramReceive:
    case Event::Kind::DatagramSend: return true;
    default: return false;
  }
}

// The socket's timeout left until `deadline`; zero once it has passed.
Duration timeLeft(Deadline deadline) noexcept {
  if (deadline == kNoDeadline) return kInfiniteTimeout;
  return std::max(Duration(deadline - Clock::now()), Duration::zero());
}

bool sharesTurn(const TurnTaker& one, const TurnTaker& other) noexcept {
  return one.channel == other.channel && one.writer == other.writer;
}

// Queues `taker`; true when it must wait for its turn: a call of its
// channel and direction is there already (inside, or waiting itself).
bool join(TaskTurns& turns, TurnTaker& taker) noexcept {
  std::lock_guard<std::mutex> lock(turns.mutex);
  turns.takers.fetch_add(1, std::memory_order_relaxed);
  for (const TurnTaker* other = turns.first; other != nullptr && !taker.waiting; other = other->next)
    taker.waiting = sharesTurn(*other, taker);
  taker.previous = turns.last;
  (turns.last != nullptr ? turns.last->next : turns.first) = &taker;
  turns.last = &taker;
  return taker.waiting;
}

// Unqueues `leaving`.  When it was the one inside (its event has left the
// slot), the first waiting call of its channel and direction goes in: true
// when there was one.
bool leave(TaskTurns& turns, TurnTaker& leaving) noexcept {
  std::lock_guard<std::mutex> lock(turns.mutex);
  turns.takers.fetch_sub(1, std::memory_order_relaxed);
  (leaving.previous != nullptr ? leaving.previous->next : turns.first) = leaving.next;
  (leaving.next != nullptr ? leaving.next->previous : turns.last) = leaving.previous;
  if (leaving.waiting) return false;
  for (TurnTaker* taker = turns.first; taker != nullptr; taker = taker->next) {
    if (!taker->waiting || !sharesTurn(*taker, leaving)) continue;
    taker->waiting = false;
    taker->woken = true;
    // Parked already: resumed through its wait, which stays until it has
    // taken the lock; else it sees `woken` before it parks.
    if (CancellableWait* wait = taker->wait; wait != nullptr && !wait->cancelled.exchange(true))
      wait->cancelTask(*wait);
    return true;
  }
  return false;
}

}  // namespace

// One post of `event` and the task's wait for it, at most `timeout`.  A
// turn waited for may have used up the socket's timeout: then one try that
// does not wait, as a call with a zero timeout makes, and timed_out if it
// would have to.
bool SocketCall::awaitOnce(Event& event, Duration timeout, std::error_code& ec) noexcept {
  if (timeout == Duration::zero()) {
    if (!tryInTask(event, ec)) ec = makeAprError(APR_TIMEUP);
    return true;
  }
  // A tail call, as awaitInTask()'s: the registration and the wait are
  // one frame there.
  return awaitSocketInTask(event, timeout, ec, state_->cancellation, startedAt_);
}

bool SocketCall::awaitInTask(Event& event, std::error_code& ec) noexcept {
  ChannelCore* core = currentTaskChannel();
  const Duration timeout = state_->timeout;
  if (core == nullptr || timeout == Duration::zero()) return false;
  // A tail call: while the task is parked, this frame is no longer on its
  // stack (each frame there is a cache line or two that its wake-up finds
  // cold).
  if (!takesTurns(event)) return awaitOnce(event, timeout, ec);
  return awaitWithTurns(*core, event, timeout, ec);
}

bool SocketCall::awaitWithTurns(ChannelCore& core, Event& event, Duration timeout, std::error_code& ec) noexcept {
  TaskTurns& turns = state_->turns;
  TurnTaker me;
  me.channel = &core;
  me.writer = event.kind() == Event::Kind::DatagramSend;
  const Deadline deadline = deadlineAfter(timeout);
  const bool shutDownBefore = core.isShutDown();
  // Inside, the call's event finds the slot free unless an event posted on
  // the channel directly holds it: then it fails with socket_busy, and so,
  // one after the other, do the calls waiting behind it.
  const bool queued = join(turns, me);
  if (!queued) {
    awaitOnce(event, timeout, ec);
  } else if (awaitTurn(me, deadline, ec)) {
    awaitOnce(event, timeLeft(deadline), ec);
  }
  // The call handed the turn on: the task it resumed runs on another
  // worker if one is idle, not after this task's next wait.
  if (leave(turns, me)) core.shareLocalBatch();
  // A shutdown() that came while the call waited for its turn ended it:
  // operation_canceled, as for a call waiting in the kernel, even where
  // the call inside handed it the turn and the channel then refused its
  // post (channel_shut_down is for calls made after the shutdown).
  if (queued && !shutDownBefore && ec == Errc::channel_shut_down)
    ec = std::make_error_code(std::errc::operation_canceled);
  return true;
}

bool SocketCall::awaitTurn(TurnTaker& me, Deadline deadline, std::error_code& ec) noexcept {
  TaskTurns& turns = state_->turns;
  TimerEvent turn{kInfiniteTimeout};  // cancelled when the turn comes
  CancellableWait wait;
  wait.cancelTask = &ChannelCore::cancelWaitedEvent;
  wait.event = &turn;
  wait.channel = currentTaskChannel();
  {
    std::lock_guard<std::mutex> lock(turns.mutex);
    if (me.woken) return true;
    me.wait = &wait;
  }
  std::error_code waited;
  const Duration left = timeLeft(deadline);
  if (left == Duration::zero()) {
    waited = makeAprError(APR_TIMEUP);
  } else if (!state_->cancellation.enterWait(wait, startedAt_)) {
    waited = std::make_error_code(std::errc::operation_canceled);
  } else {
    detail::awaitInTask(turn, left, waited, &wait.cancelled);
    state_->cancellation.leaveWait(wait);
  }
  bool woken = false;
  {
    std::lock_guard<std::mutex> lock(turns.mutex);
    woken = me.woken;
    me.wait = nullptr;
  }
  // Its turn came: the call goes in, whatever else ended the wait (a
  // cancel() since the call began fails its post at once, and so do the
  // task's cancellation and a deadline that has passed), and passes the
  // turn on when it leaves.
  if (woken) return true;
  ec = wait.cancelled.load() ? std::make_error_code(std::errc::operation_canceled) : waited;
  return false;
}

void cancelSocket(const SocketStateSlot& slot) noexcept {
  const SocketPin pin(slot);
  if (pin.get() != nullptr) pin.get()->cancellation.cancel();
}

void closeSocket(SocketStateSlot& slot) noexcept {
  SocketState* state = nullptr;
  bool first = false;
  {
    const SocketPin pin(slot);
    state = pin.get();
    if (state != nullptr) {
      slot.enterClose();  // counted before it can be first: a later close() sees it
      first = state->cancellation.close();
      if (!first) slot.leaveClose();
    }
  }
  if (!first) {
    // Another thread's close() may still be using the state and this
    // object: a close() here, the destructor's one above all (on the
    // thread whose call that close() cancelled, say), returns after it.
    waitUntil([&] { return !slot.closeUnderWay(); });
    return;
  }
  // Only the first close() destroys the state, so it stays while this
  // waits unpinned: a pin held here would stall another close() spinning
  // in take().
  waitUntil([&] { return !state->cancellation.callsInside(); });
  slot.reset();
  slot.leaveClose();  // the last access to the object
}

bool socketOpen(const SocketStateSlot& slot) noexcept {
  const SocketPin pin(slot);
  return pin.get() != nullptr && !pin.get()->cancellation.closing();
}

}  // namespace evchan::detail
