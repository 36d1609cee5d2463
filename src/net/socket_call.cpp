// SPDX-License-Identifier: Apache-2.0
// SocketCall: blocking socket calls that another thread can cancel; the
// thread's side.
#include "net/socket_call.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include <evchan/error.h>

#include "apr/socket_io.h"

namespace evchan::detail {
namespace {

// Without a wake socket, a thread checks for cancel() this often.
constexpr auto kPollSlice = std::chrono::milliseconds(20);

std::error_code canceled() { return std::make_error_code(std::errc::operation_canceled); }

}  // namespace

SocketCall::SocketCall(const SocketStateSlot& slot) noexcept {
  const SocketPin pin(slot);
  if (pin.get() != nullptr && pin.get()->cancellation.beginCall(startedAt_)) state_ = pin.get();
}

SocketCall::SocketCall(const SocketStateSlot& slot, std::uint64_t startedAt) noexcept : SocketCall(slot) {
  if (state_ != nullptr) startedAt_ = startedAt;
}

bool SocketCall::cancelledSinceStart() const noexcept {
  return state_ != nullptr &&
         (state_->cancellation.generation() != startedAt_ || state_->cancellation.closing());
}

SocketCall::~SocketCall() {
  if (state_ != nullptr) state_->cancellation.endCall();
}

std::error_code SocketCall::waitOnThread(bool writable, Deadline deadline) noexcept {
  const Readiness readiness = writable ? Readiness::Writable : Readiness::Readable;
  if (Clock::now() >= deadline) return makeAprError(APR_TIMEUP);
  CancellableWait wait;
  if (!state_->cancellation.enterWait(wait, startedAt_)) return canceled();
  std::error_code ec;
  for (;;) {
    const Deadline step = wait.wake != nullptr ? deadline : std::min(deadline, Clock::now() + kPollSlice);
    bool woken = false;
    ec = waitReady(state_->socket, readiness, step, wait.wake, woken);
    if (wait.cancelled.load()) {
      ec = canceled();
      break;
    }
    if (ec == std::errc::timed_out && step != deadline) continue;  // a slice
    if (!ec && woken) {
      // The byte of a cancel() that came before this wait: it stays until
      // the waits it ended have gone, which is a moment.
      std::this_thread::yield();
      continue;
    }
    break;
  }
  state_->cancellation.leaveWait(wait);
  return ec;
}

}  // namespace evchan::detail
