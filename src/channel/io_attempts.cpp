// SPDX-License-Identifier: Apache-2.0
// One non-blocking try of a read, write, accept or connect.
#include "channel/io_attempts.h"

#include <cerrno>

#include <evchan/error.h>

#include "apr/socket_io.h"
#include "channel/datagram_attempts.h"
#include "channel/descriptor_attempts.h"
#include "apr/socket_state.h"
#include "poller/event_access.h"

namespace evchan::detail {
namespace {

AttemptResult finished(std::error_code error) { return AttemptResult{true, false, error}; }
AttemptResult wouldBlock() { return AttemptResult{false, true, {}}; }

// How many times a read that would block at an urgent mark is made again
// at once (see tryRead()).
constexpr int kUrgentMarkRetries = 4;

AttemptResult tryRead(ReadEvent& event, Watch& watch) {
  std::size_t length = 0;
  bool cutShort = false;
  // On the watch's descriptor: with many connections apr_socket_t would be
  // one more cold object to fetch per read.
  std::error_code ec = receiveSome(watch.fd, watch.passesDescriptors, event.buffer(), event.size(), length, cutShort);
  // Once urgent data came, a would-block at its mark can be spurious (a
  // signal was pending: see atUrgentMark()) with no readiness report to
  // follow, so parking on it would wait for ever: read again, with the
  // thread's signals blocked.  The bound is for the notifications that
  // cannot be blocked (io_uring's), and for a mark whose urgent byte has
  // not come yet: a real would-block, whose end brings a report.
  for (int retries = 0; ec && watch.alwaysTry && retries < kUrgentMarkRetries &&
                        ec == std::errc::resource_unavailable_try_again && atUrgentMark(watch.fd);
       ++retries) {
    ec = receiveSomeSignalsBlocked(watch.fd, watch.passesDescriptors, event.buffer(), event.size(), length,
                                   cutShort);
  }
  if (ec) {  // tested first: comparing with an errc costs two virtual calls
    if (ec == std::errc::resource_unavailable_try_again) return wouldBlock();
    return finished(ec);
  }
  EventAccess::transferred(event) = length;
  // A short read emptied the socket buffer: the next read can park at
  // once instead of paying for an EAGAIN.  (The channel ignores this
  // once the peer has hung up: the end of the stream may be queued
  // behind these bytes with its readiness report already consumed; and
  // once urgent data came, which ends reads at its mark: Watch::alwaysTry.)
  // A read the kernel ended early says nothing about what is left.
  return AttemptResult{true, length < event.size() && !cutShort, {}};
}

AttemptResult tryAccept(AcceptEvent& event, Watch& watch) {
  std::error_code ec;
  std::unique_ptr<SocketState> accepted = acceptOnce(watch.socket, ec);
  if (accepted) {
    EventAccess::accepted(event) = SocketAccess::adopt(std::move(accepted));
    return finished({});
  }
  if (ec == std::errc::resource_unavailable_try_again) return wouldBlock();
  return finished(ec);
}

AttemptResult tryWrite(WriteEvent& event, Watch& watch) {
  std::size_t sent = 0;
  std::size_t offered = 0;
  // One system call for one buffer or many pieces (sendmsg up to IOV_MAX).
  const std::error_code ec = sendGather(watch.fd, event.buffers(), event.bufferCount(), sent, &offered);
  if (ec) return ec == std::errc::resource_unavailable_try_again ? wouldBlock() : finished(ec);
  EventAccess::transferred(event) = sent;
  // Full only when the send took less than it was offered: a write cut
  // short by the piece limit leaves the socket writable, and an edge-
  // triggered poller would never report it so.
  return AttemptResult{true, sent < offered, {}};
}

}  // namespace

std::error_code kernelError(int result) noexcept {
  if (result == -ECANCELED) return std::make_error_code(std::errc::operation_canceled);
  return makeAprError(-result);  // an errno value is an APR status on POSIX
}

AttemptResult attemptRead(Event& event, Watch& watch) noexcept {
  if (isDatagram(event)) return attemptDatagram(event, watch);
  if (isDescriptorEvent(event)) return attemptDescriptorEvent(event, watch);
  if (event.kind() == Event::Kind::Accept) return tryAccept(static_cast<AcceptEvent&>(event), watch);
  return tryRead(static_cast<ReadEvent&>(event), watch);
}

AttemptResult attemptWrite(Event& event, Watch& watch) noexcept {
  if (isDatagram(event)) return attemptDatagram(event, watch);
  if (isDescriptorEvent(event)) return attemptDescriptorEvent(event, watch);
  if (event.kind() == Event::Kind::Connect) return finished(pendingConnectResult(watch.socket));
  return tryWrite(static_cast<WriteEvent&>(event), watch);
}

}  // namespace evchan::detail
