// SPDX-License-Identifier: Apache-2.0
// Internal: a blocking call on a TcpSocket or TcpListener that cancel() and
// close() on another thread can end; and those two.
#ifndef EVCHAN_SRC_NET_SOCKET_CALL_H
#define EVCHAN_SRC_NET_SOCKET_CALL_H

#include <cstdint>
#include <system_error>

#include <memory>

#include <evchan/event.h>
#include <evchan/socket_events.h>

#include "apr/socket_state.h"
#include "poller/deadline.h"

namespace evchan::detail {

class ChannelCore;

/// Brackets one blocking call, from its start to its return.  While it
/// lasts the socket's state stays (close() waits for the call to leave
/// before it closes the descriptor), and its waits end with
/// operation_canceled on a cancel() or close() made since the call began.
class SocketCall {
 public:
  /// state() is null when the socket is closed or closing (not_open).
  explicit SocketCall(const SocketStateSlot& slot) noexcept;
  /// A call that began earlier, when the generation was `startedAt` (see
  /// WaitCancellation::generation()): a cancel() since then ends it.
  SocketCall(const SocketStateSlot& slot, std::uint64_t startedAt) noexcept;
  ~SocketCall();
  SocketCall(const SocketCall&) = delete;
  SocketCall& operator=(const SocketCall&) = delete;

  SocketState* state() const noexcept { return state_; }

  /// True once a cancel() or close() came since the call began: a call
  /// made of several steps checks it where a step would not wait (an
  /// accept that fails at once, out of descriptors), so that the cancel
  /// still ends it.
  bool cancelledSinceStart() const noexcept;

  /// On a thread: waitReady() on the socket (for writing when `writable`,
  /// else for reading) until `deadline`, or until a cancel()
  /// (operation_canceled).  Defined in socket_call.cpp, the rest in
  /// socket_call_task.cpp (the channel's Readiness is another).
  std::error_code waitOnThread(bool writable, Deadline deadline) noexcept;
  /// In a task: awaitInTask() with the socket's timeout, ended by a
  /// cancel() (operation_canceled).  False, doing nothing, where
  /// awaitInTask() would return false (outside a task, a zero timeout).
  /// An accept, or a datagram receive or send, that finds another task's
  /// call of the same channel (and direction) on the socket waits for its
  /// turn, first come first in, within the same timeout, instead of
  /// failing with socket_busy.
  bool awaitInTask(Event& event, std::error_code& ec) noexcept;
  /// Whether tasks' calls are queued on the socket (awaitInTask() above):
  /// a call that first tries the socket directly skips the try then, so
  /// as not to go ahead of them.
  bool turnsTaken() const noexcept { return state_->turns.takers.load(std::memory_order_relaxed) != 0; }

 private:
  /// One post of `event` and the task's wait for it; true (the call
  /// waited), so that awaitInTask() can end with it as a tail call.
  bool awaitOnce(Event& event, Duration timeout, std::error_code& ec) noexcept;
  /// awaitInTask() for the calls that take turns.
  bool awaitWithTurns(ChannelCore& core, Event& event, Duration timeout, std::error_code& ec) noexcept;
  /// Parks `me`, queued behind another call of its channel and direction,
  /// until that call leaves (true: `me` goes in), or the wait ends
  /// otherwise: false, with `ec` set (timed_out at `deadline`,
  /// operation_canceled).
  bool awaitTurn(TurnTaker& me, Deadline deadline, std::error_code& ec) noexcept;

  SocketState* state_ = nullptr;
  std::uint64_t startedAt_ = 0;
};

/// Ends the waits of the calls under way on the socket; harmless when
/// there are none, or when it is closed.
void cancelSocket(const SocketStateSlot& slot) noexcept;

/// Cancels the calls under way, refuses new ones (not_open), waits until
/// the calls have left (a task yields meanwhile; a thread blocks) and
/// closes the socket.  A close() racing another returns at once.
void closeSocket(SocketStateSlot& slot) noexcept;

/// Open and not closing.
bool socketOpen(const SocketStateSlot& slot) noexcept;

/// One accept within `call` (on the listener `event` is for): inside a
/// task the task waits for `event`; on a thread it waits, at most the
/// listener's timeout, for a connection.  The connection, or null with
/// `ec` set.
std::unique_ptr<SocketState> acceptWithin(AcceptEvent& event, SocketCall& call, std::error_code& ec) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_NET_SOCKET_CALL_H
