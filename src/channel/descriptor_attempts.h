// SPDX-License-Identifier: Apache-2.0
// Internal: the channel's handling of DescriptorSendEvent and
// DescriptorReceiveEvent, on readiness and completion backends alike.
// Builds without AF_UNIX sockets (Windows) refuse them at post().
#ifndef EVCHAN_SRC_CHANNEL_DESCRIPTOR_ATTEMPTS_H
#define EVCHAN_SRC_CHANNEL_DESCRIPTOR_ATTEMPTS_H

#include <system_error>

#include <evchan/event.h>

#include "apr/socket_state.h"
#include "channel/io_attempts.h"

namespace evchan::detail {

struct SocketOperation;
class CompletionPoller;

/// Whether `event` is a descriptor event.
inline bool isDescriptorEvent(const Event& event) noexcept {
  return event.kind() == Event::Kind::DescriptorSend || event.kind() == Event::Kind::DescriptorReceive;
}

/// What post() checks: the socket open, the buffers and descriptors real
/// (see the events' documentation).
std::error_code checkDescriptorEvent(Event& event) noexcept;
/// The slot of the event's socket; only for an event checkDescriptorEvent()
/// accepted.
const SocketStateSlot& descriptorSlotOf(Event& event) noexcept;
/// Zeroes the counts before a post.
void clearDescriptorEvent(Event& event) noexcept;
/// One non-blocking try, with watch.mutex held.
AttemptResult attemptDescriptorEvent(Event& event, Watch& watch) noexcept;
/// A completion backend's operation for the event (op's fd already set).
void descriptorOperation(Event& event, SocketOperation& op) noexcept;
/// After its completion (`result`: bytes or -errno): the event's counts,
/// descriptors and error.
std::error_code finishDescriptorEvent(Event& event, int result, CompletionPoller& poller) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_CHANNEL_DESCRIPTOR_ATTEMPTS_H
