// SPDX-License-Identifier: Apache-2.0
// Descriptor events in the channel: one try on readiness, or a recvmsg or
// sendmsg with an SCM_RIGHTS control message that a completion backend
// performs.
#include "channel/descriptor_attempts.h"

#include <cstddef>
#include <new>

#include <evchan/descriptor_events.h>
#include <evchan/error.h>

#include "poller/message_scratch.h"
#include "poller/poller.h"
#include "posix/unix_socket.h"

namespace evchan::detail {

/// The events' private parts, and the room a completion backend uses in
/// them: the message and, after it, the control message.
struct DescriptorEventAccess {
  struct Scratch {
    MessageScratch message;
    alignas(std::max_align_t) unsigned char control[kDescriptorControlRoom];
  };
  static_assert(sizeof(Scratch) <= kDescriptorScratchSize && alignof(Scratch) <= 16,
                "a descriptor event's scratch (alignas(16)) holds the message and its control room");

  static std::size_t& transferred(DescriptorSendEvent& e) noexcept { return e.transferred_; }
  static std::size_t& transferred(DescriptorReceiveEvent& e) noexcept { return e.transferred_; }
  static std::size_t& received(DescriptorReceiveEvent& e) noexcept { return e.received_; }
  /// A fresh scratch for the operation about to be submitted.
  template <class DescriptorEvent>
  static Scratch& freshScratch(DescriptorEvent& e) noexcept {
    Scratch* scratch = new (e.scratch_) Scratch{};
    scratch->message.control = scratch->control;
    return *scratch;
  }
  /// The scratch freshScratch() made for the operation under way.
  static Scratch& scratch(DescriptorReceiveEvent& e) noexcept {
    return *std::launder(reinterpret_cast<Scratch*>(e.scratch_));
  }
};

namespace {

using Access = DescriptorEventAccess;

AttemptResult receiveNow(DescriptorReceiveEvent& event, Watch& watch) noexcept {
  std::size_t bytes = 0, received = 0;
  const std::error_code ec = receiveDescriptorsOnce(watch.fd, event.data(), event.size(),
                                                    event.descriptors(), event.capacity(), bytes, received);
  if (ec == std::errc::resource_unavailable_try_again) return AttemptResult{false, true, {}};
  Access::transferred(event) = bytes;
  Access::received(event) = received;
  return AttemptResult{true, false, ec};
}

AttemptResult sendNow(DescriptorSendEvent& event, Watch& watch) noexcept {
  std::size_t sent = 0;
  const std::error_code ec = sendDescriptorsOnce(watch.fd, event.data(), event.size(),
                                                 event.descriptors(), event.descriptorCount(), sent);
  if (ec == std::errc::resource_unavailable_try_again) return AttemptResult{false, true, {}};
  Access::transferred(event) = sent;
  // A short send filled the buffer: the next write can park at once.
  return AttemptResult{true, !ec && sent < event.size(), ec};
}

}  // namespace

std::error_code checkDescriptorEvent(Event& event) noexcept {
  if (event.kind() == Event::Kind::DescriptorSend) {
    auto& send = static_cast<DescriptorSendEvent&>(event);
    if (!send.socket().isOpen()) return Errc::not_open;
    return checkDescriptorsToSend(send.data(), send.size(), send.descriptors(), send.descriptorCount());
  }
  auto& receive = static_cast<DescriptorReceiveEvent&>(event);
  if (!receive.socket().isOpen()) return Errc::not_open;
  if (receive.data() == nullptr && receive.size() != 0) return Errc::null_buffer;
  if (receive.size() == 0 || (receive.descriptors() == nullptr && receive.capacity() != 0))
    return std::make_error_code(std::errc::invalid_argument);
  return {};
}

const SocketStateSlot& descriptorSlotOf(Event& event) noexcept {
  if (event.kind() == Event::Kind::DescriptorSend)
    return SocketAccess::slot(static_cast<DescriptorSendEvent&>(event).socket());
  return SocketAccess::slot(static_cast<DescriptorReceiveEvent&>(event).socket());
}

void clearDescriptorEvent(Event& event) noexcept {
  if (event.kind() == Event::Kind::DescriptorSend) {
    Access::transferred(static_cast<DescriptorSendEvent&>(event)) = 0;
    return;
  }
  auto& receive = static_cast<DescriptorReceiveEvent&>(event);
  Access::transferred(receive) = 0;
  Access::received(receive) = 0;
}

AttemptResult attemptDescriptorEvent(Event& event, Watch& watch) noexcept {
  if (event.kind() == Event::Kind::DescriptorSend) return sendNow(static_cast<DescriptorSendEvent&>(event), watch);
  return receiveNow(static_cast<DescriptorReceiveEvent&>(event), watch);
}

void descriptorOperation(Event& event, SocketOperation& op) noexcept {
  if (event.kind() == Event::Kind::DescriptorSend) {
    auto& send = static_cast<DescriptorSendEvent&>(event);
    Access::Scratch& scratch = Access::freshScratch(send);
    scratch.message.controlLength = writeDescriptorControl(scratch.control, send.descriptors(), send.descriptorCount());
    op.kind = SocketOperation::Kind::SendMessage;
    op.buffer = const_cast<void*>(send.data());
    op.size = send.size();
    op.scratch = &scratch.message;
    return;
  }
  auto& receive = static_cast<DescriptorReceiveEvent&>(event);
  Access::Scratch& scratch = Access::freshScratch(receive);
  scratch.message.controlLength = sizeof scratch.control;
  op.kind = SocketOperation::Kind::ReceiveMessage;
  op.buffer = receive.data();
  op.size = receive.size();
  op.scratch = &scratch.message;
}

std::error_code finishDescriptorEvent(Event& event, int result, CompletionPoller& poller) noexcept {
  if (result < 0) return kernelError(result);
  if (event.kind() == Event::Kind::DescriptorSend) {
    Access::transferred(static_cast<DescriptorSendEvent&>(event)) = static_cast<std::size_t>(result);
    return {};
  }
  auto& receive = static_cast<DescriptorReceiveEvent&>(event);
  Access::Scratch& scratch = Access::scratch(receive);
  poller.finishMessage(scratch.message);
  std::size_t received = 0;
  const std::error_code ec =
      takeReceivedDescriptors(scratch.control, scratch.message.controlLength, scratch.message.controlTruncated,
                              receive.descriptors(), receive.capacity(), received);
  Access::transferred(receive) = static_cast<std::size_t>(result);
  Access::received(receive) = received;
  if (!ec && result == 0) return Errc::end_of_stream;
  return ec;
}

}  // namespace evchan::detail
