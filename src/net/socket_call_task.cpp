// SPDX-License-Identifier: Apache-2.0
// SocketCall: a task's wait that cancel() ends; cancel() and close().
#include "net/socket_call.h"

#include "channel/channel_core.h"
#include "net/close_wait.h"
#include "sync/waiter.h"
#include "task/await.h"

namespace evchan::detail {
namespace {

// cancel() of a task's wait: its event, parked on the socket or about to
// be (awaitInTask() checks the flag once it has posted it).
void cancelPostedEvent(CancellableWait& wait) noexcept {
  static_cast<ChannelCore*>(wait.channel)->cancel(*static_cast<Event*>(wait.event));
}

}  // namespace

bool SocketCall::awaitInTask(Event& event, std::error_code& ec) noexcept {
  ChannelCore* core = currentTaskChannel();
  const Duration timeout = state_->timeout;
  if (core == nullptr || timeout == Duration::zero()) return false;
  CancellableWait wait;
  wait.cancelTask = &cancelPostedEvent;
  wait.event = &event;
  wait.channel = core;
  if (!state_->cancellation.enterWait(wait, startedAt_)) {
    ec = std::make_error_code(std::errc::operation_canceled);
    return true;
  }
  detail::awaitInTask(event, timeout, ec, &wait.cancelled);
  state_->cancellation.leaveWait(wait);
  // A cancel() racing the timer: the cancel() is what the caller asked for.
  if (wait.cancelled.load() && ec == std::errc::timed_out) ec = std::make_error_code(std::errc::operation_canceled);
  return true;
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
