// SPDX-License-Identifier: Apache-2.0
// Datagram events in the channel: one try on readiness, or an operation a
// completion backend performs (recvmsg/sendmsg).
#include "channel/datagram_attempts.h"

#include <cstring>

#include <evchan/datagram_events.h>
#include <evchan/error.h>

#include "apr/datagram_io.h"
#include "apr/udp_socket_access.h"
#include "poller/datagram_access.h"
#include "poller/poller.h"

namespace evchan::detail {
namespace {

std::error_code checkBuffer(const UdpSocket& socket, const void* buffer, std::size_t size) {
  if (!socket.isOpen()) return Errc::not_open;
  if (buffer == nullptr && size != 0) return Errc::null_buffer;
  return {};
}

AttemptResult receiveNow(DatagramReceiveEvent& event, Watch& watch) {
  apr_sockaddr_t from{};
  std::size_t received = 0;
  const std::error_code ec = receiveDatagram(watch.socket, event.buffer(), event.size(), &from, received);
  if (ec == std::errc::resource_unavailable_try_again) return AttemptResult{false, true, {}};
  if (!ec || ec == std::errc::message_size) {
    DatagramEventAccess::transferred(event) = received;
    DatagramEventAccess::peer(event) = senderAddress(from);
  }
  return AttemptResult{true, false, ec};
}

AttemptResult sendNow(DatagramSendEvent& event, Watch& watch) {
  apr_sockaddr_t target{};
  const bool addressed = !event.destination().empty();
  if (addressed) {
    if (std::error_code ec = datagramTarget(event.destination(), target)) return AttemptResult{true, false, ec};
  }
  std::size_t sent = 0;
  const std::error_code ec = sendDatagram(watch.socket, event.buffer(), event.size(), addressed ? &target : nullptr, sent);
  if (ec == std::errc::resource_unavailable_try_again) return AttemptResult{false, true, {}};
  if (!ec) DatagramEventAccess::transferred(event) = sent;
  return AttemptResult{true, false, ec};
}

}  // namespace

const SocketStateSlot& datagramSlotOf(Event& event) noexcept {
  if (event.kind() == Event::Kind::DatagramReceive)
    return UdpSocketAccess::slot(static_cast<DatagramReceiveEvent&>(event).socket());
  return UdpSocketAccess::slot(static_cast<DatagramSendEvent&>(event).socket());
}

std::error_code checkDatagram(Event& event) noexcept {
  if (event.kind() == Event::Kind::DatagramReceive) {
    auto& receive = static_cast<DatagramReceiveEvent&>(event);
    return checkBuffer(receive.socket(), receive.buffer(), receive.size());
  }
  auto& send = static_cast<DatagramSendEvent&>(event);
  if (std::error_code ec = checkBuffer(send.socket(), send.buffer(), send.size())) return ec;
  apr_sockaddr_t target{};
  return send.destination().empty() ? std::error_code() : datagramTarget(send.destination(), target);
}

void clearDatagram(Event& event) noexcept {
  if (event.kind() == Event::Kind::DatagramReceive) {
    auto& receive = static_cast<DatagramReceiveEvent&>(event);
    DatagramEventAccess::transferred(receive) = 0;
    DatagramEventAccess::peer(receive) = Address();
  } else {
    DatagramEventAccess::transferred(static_cast<DatagramSendEvent&>(event)) = 0;
  }
}

AttemptResult attemptDatagram(Event& event, Watch& watch) noexcept {
  if (event.kind() == Event::Kind::DatagramReceive) return receiveNow(static_cast<DatagramReceiveEvent&>(event), watch);
  return sendNow(static_cast<DatagramSendEvent&>(event), watch);
}

void datagramOperation(Event& event, SocketOperation& op) noexcept {
  if (event.kind() == Event::Kind::DatagramReceive) {
    auto& receive = static_cast<DatagramReceiveEvent&>(event);
    op.kind = SocketOperation::Kind::ReceiveMessage;
    op.buffer = receive.buffer();
    op.size = receive.size();
    op.scratch = &DatagramEventAccess::freshScratch(receive);
    return;
  }
  auto& send = static_cast<DatagramSendEvent&>(event);
  op.kind = SocketOperation::Kind::SendMessage;
  op.buffer = const_cast<void*>(send.buffer());
  op.size = send.size();
  MessageScratch& scratch = DatagramEventAccess::freshScratch(send);
  op.scratch = &scratch;
  apr_sockaddr_t target{};
  // post() checked the destination; a failure here leaves it empty, and
  // the kernel then refuses an unconnected socket's send.
  if (!send.destination().empty() && !datagramTarget(send.destination(), target) &&
      static_cast<std::size_t>(target.salen) <= sizeof scratch.address) {
    std::memcpy(scratch.address, &target.sa, static_cast<std::size_t>(target.salen));
    scratch.addressLength = static_cast<unsigned>(target.salen);
  }
}

std::error_code finishDatagram(Event& event, int result, CompletionPoller& poller) noexcept {
  if (result < 0) return kernelError(result);
  if (event.kind() == Event::Kind::DatagramSend) {
    DatagramEventAccess::transferred(static_cast<DatagramSendEvent&>(event)) = static_cast<std::size_t>(result);
    return {};
  }
  auto& receive = static_cast<DatagramReceiveEvent&>(event);
  MessageScratch& scratch = DatagramEventAccess::scratch(receive);
  poller.finishMessage(scratch);
  DatagramEventAccess::transferred(receive) = static_cast<std::size_t>(result);
  apr_sockaddr_t from{};
  if (scratch.addressLength > 0 && scratch.addressLength <= sizeof from.sa) {
    std::memcpy(&from.sa, scratch.address, scratch.addressLength);
    DatagramEventAccess::peer(receive) = senderAddress(from);
  }
  return scratch.truncated ? std::make_error_code(std::errc::message_size) : std::error_code();
}

}  // namespace evchan::detail
