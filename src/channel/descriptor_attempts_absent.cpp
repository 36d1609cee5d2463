// SPDX-License-Identifier: Apache-2.0
// Descriptor events where the build has no AF_UNIX sockets (Windows, and
// builds without the POSIX layer): post() refuses them, so the channel
// never reaches the rest.
#include "channel/descriptor_attempts.h"

namespace evchan::detail {

std::error_code checkDescriptorEvent(Event&) noexcept {
  return std::make_error_code(std::errc::operation_not_supported);
}

const SocketStateSlot& descriptorSlotOf(Event&) noexcept {
  static const SocketStateSlot closed;  // never reached: post() refused the event
  return closed;
}

void clearDescriptorEvent(Event&) noexcept {}

AttemptResult attemptDescriptorEvent(Event&, Watch&) noexcept {
  return AttemptResult{true, false, std::make_error_code(std::errc::operation_not_supported)};
}

void descriptorOperation(Event&, SocketOperation&) noexcept {}

std::error_code finishDescriptorEvent(Event&, int, CompletionPoller&) noexcept {
  return std::make_error_code(std::errc::operation_not_supported);
}

}  // namespace evchan::detail
