// SPDX-License-Identifier: Apache-2.0
// Internal: the channel's handling of DatagramReceiveEvent and
// DatagramSendEvent, on readiness and completion backends alike.
#ifndef EVCHAN_SRC_CHANNEL_DATAGRAM_ATTEMPTS_H
#define EVCHAN_SRC_CHANNEL_DATAGRAM_ATTEMPTS_H

#include <system_error>

#include <evchan/event.h>

#include "apr/socket_state.h"
#include "channel/io_attempts.h"

namespace evchan::detail {

// From poller/poller.h, which io_attempts.cpp cannot include (its
// Readiness is not apr/socket_io.h's).
struct SocketOperation;
class CompletionPoller;

/// Whether `event` is a datagram event.
inline bool isDatagram(const Event& event) noexcept {
  return event.kind() == Event::Kind::DatagramReceive || event.kind() == Event::Kind::DatagramSend;
}

/// The slot of the datagram event's socket.
const SocketStateSlot& datagramSlotOf(Event& event) noexcept;
/// What post() checks: the socket open, the buffer real, a destination
/// numeric with its port in range.
std::error_code checkDatagram(Event& event) noexcept;
/// Zeroes the byte count (and a receive's peer) before a post.
void clearDatagram(Event& event) noexcept;
/// One non-blocking try, with watch.mutex held.  A datagram done leaves
/// the socket's hint alone: more may be queued (or room left).
AttemptResult attemptDatagram(Event& event, Watch& watch) noexcept;
/// A completion backend's operation for the event (op's fd already set).
void datagramOperation(Event& event, SocketOperation& op) noexcept;
/// After its completion (`result`: bytes or -errno): the event's byte
/// count, peer and error.
std::error_code finishDatagram(Event& event, int result, CompletionPoller& poller) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_CHANNEL_DATAGRAM_ATTEMPTS_H
