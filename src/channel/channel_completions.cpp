// SPDX-License-Identifier: Apache-2.0
// ChannelCore's completion path: socket events on a backend whose kernel
// performs the operation and reports it done (io_uring).
//
// An event in flight sits in its watch's reader or writer slot from its
// submission until the kernel's completion for it has been handled, and
// the watch counts it in ringOps.  Cancelling (ChannelCore::cancel, closing
// the socket, shutdown) only asks the kernel to cancel: the event is handed
// back when the operation's own completion arrives, so the kernel never
// touches a buffer after its owner got the event back.  A closed socket's
// watch lives on the retired list until its last completion.
#include <cerrno>
#include <cstddef>
#include <utility>

#include <evchan/error.h>

#include "channel/channel_core.h"
#include "channel/datagram_attempts.h"
#include "channel/descriptor_attempts.h"

namespace evchan::detail {
namespace {

SocketOperation operationFor(Event& event, const Watch& watch) {
  SocketOperation op{SocketOperation::Kind::Receive, static_cast<int>(watch.fd), nullptr, 0, nullptr, 0, nullptr, 0,
                     nullptr};
  switch (event.kind()) {
    case Event::Kind::Read: {
      auto& read = static_cast<ReadEvent&>(event);
      op.buffer = read.buffer();
      op.size = read.size();
      break;
    }
    case Event::Kind::Write: {
      auto& write = static_cast<WriteEvent&>(event);
      // Only pieces with bytes go to the kernel (post() submits an event
      // with some), the first one at the front.  Bounded all the same: the
      // pieces are the caller's memory.
      const ConstBuffer* pieces = write.buffers();
      std::size_t count = write.bufferCount();
      while (count > 1 && pieces->size == 0) {
        ++pieces;
        --count;
      }
      if (count == 1 || write.size() == pieces->size) {
        op.kind = SocketOperation::Kind::Send;  // one piece: IORING_OP_SEND is cheaper
        op.buffer = const_cast<void*>(pieces->data);
        op.size = pieces->size;
      } else {
        op.kind = SocketOperation::Kind::SendPieces;
        op.pieces = pieces;
        op.pieceCount = count;
      }
      break;
    }
    case Event::Kind::Accept: op.kind = SocketOperation::Kind::Accept; break;
    case Event::Kind::DatagramReceive:
    case Event::Kind::DatagramSend: datagramOperation(event, op); break;
    case Event::Kind::DescriptorSend:
    case Event::Kind::DescriptorReceive: descriptorOperation(event, op); break;
    default: break;  // connects are built by postConnectToRing()
  }
  return op;
}

}  // namespace

std::error_code ChannelCore::submitLocked(Event& event, Watch& watch, unsigned slot) noexcept {
  return submitOperationLocked(event, watch, slot, operationFor(event, watch));
}

std::error_code ChannelCore::submitOperationLocked(Event& event, Watch& watch, unsigned slot,
                                                   const SocketOperation& op) noexcept {
  Event*& pending = slot == kWritable ? watch.writer : watch.reader;
  pending = &event;
  // Counted before the lock is released: the completion may be reaped on
  // another thread as soon as submit() returns.
  ++watch.ringOps;
  if (std::error_code ec = completion_->submit(op, watch, slot)) {
    pending = nullptr;
    --watch.ringOps;
    return ec;
  }
  return {};
}

std::error_code ChannelCore::postConnectToRing(ConnectEvent& event) noexcept {
  std::error_code ec;
  apr_sockaddr_t* target = nullptr;
  std::unique_ptr<SocketState> state = openForConnect(event.address(), target, ec);
  // e.g. no socket: the event fails, the post succeeds (unless the channel
  // has shut down meanwhile: nothing is run then).
  if (!state) return completeAtPost(event, ec);
  apr_socket_t* socket = state->socket;
  SocketState* raw = state.get();
  TcpSocket& connected = EventAccess::connected(event);
  connected = SocketAccess::adopt(std::move(state));
  Watch* watch = raw->watch.watchIn(*this, socket, ec);
  if (!ec) {
    std::lock_guard<std::mutex> lock(watch->mutex);
    if (shutDown_.load(std::memory_order_acquire)) {
      ec = Errc::channel_shut_down;
    } else {
      // The address lives in the socket's pool, as long as the socket.
      const SocketOperation op{SocketOperation::Kind::Connect, static_cast<int>(watch->fd), nullptr, 0,
                               &target->sa, static_cast<unsigned>(target->salen), nullptr, 0, nullptr};
      ec = submitOperationLocked(event, *watch, kWritable, op);
      if (!ec) watch->connectTarget = target;
    }
  }
  if (ec) connected.close();
  return ec;
}

bool ChannelCore::cancelInRing(Event& event, Watch& watch) noexcept {
  std::lock_guard<std::mutex> lock(watch.mutex);
  const unsigned slot = watch.reader == &event ? kReadable : watch.writer == &event ? kWritable : 0u;
  if (slot == 0 || (watch.ringCancels & slot) != 0) return false;  // a cancel() is already under way
  watch.ringCancels |= slot;
  completion_->cancel(watch, slot);
  return true;
}

void ChannelCore::retireRingWatch(Watch* watch) noexcept {
  std::lock_guard<std::mutex> lock(watches_.mutex());
  bool inRing;
  {
    std::lock_guard<std::mutex> watchLock(watch->mutex);
    watch->retired = true;
    inRing = watch->ringOps > 0;
    if (inRing && poller_) {
      if (watch->reader != nullptr) completion_->cancel(*watch, kReadable);
      if (watch->writer != nullptr) completion_->cancel(*watch, kWritable);
      // The caller closes the descriptor next: every SQE that names it must
      // have reached the kernel, which then holds the file itself.
      completion_->flush();
    }
  }
  watches_.unlinkLocked(*watch);
  if (!poller_ || !inRing) {
    // Nothing of it is in the kernel: no completion can name it.
    delete watch;
    return;
  }
  watches_.retireLocked(*watch);  // freed once its last completion has been handled
}

void ChannelCore::pollCompletions(Deadline deadline) noexcept {
  if (completion_->waitCompletions(completedBatch_, deadline)) {
    std::this_thread::yield();  // a failing ring must not spin a core flat out
  }
  for (const Completion& completion : completedBatch_) handleCompletion(completion);
}

void ChannelCore::handleCompletion(const Completion& completion) noexcept {
  Watch& watch = *completion.watch;
  int result = completion.result;
  Event* event;
  std::error_code ec;
  apr_socket_t* connecting = nullptr;
  apr_sockaddr_t* target = nullptr;
  {
    std::lock_guard<std::mutex> lock(watch.mutex);
    Event*& pending = completion.slot == kWritable ? watch.writer : watch.reader;
    event = std::exchange(pending, nullptr);
    const bool cancelling = (watch.ringCancels & completion.slot) != 0;
    watch.ringCancels &= ~completion.slot;
    --watch.ringOps;
    if (event == nullptr) return;  // cannot happen: one operation per slot
    // The socket was closed with the operation in the kernel: it comes back
    // cancelled, like every event of a closed socket, whatever the kernel
    // made of the close (Wine's IOCP, for one, may fail it "not a socket"
    // when the close overtakes the cancel).
    if (watch.retired && result < 0) result = -ECANCELED;
    // The sockets are O_NONBLOCK (the threads' calls need it), and for such
    // a socket io_uring may give up waiting and complete the operation with
    // EAGAIN: when its internal poll has been woken many times with nothing
    // there (another receiver took each datagram), it retries once without
    // a poll and returns what the socket says.  Nothing happened: the same
    // operation goes in again.  Not when a cancel() is under way (it named
    // this operation, as for the accept below) or the channel shuts down.
    if (result == -EAGAIN && event->kind() != Event::Kind::Connect) {
      if (cancelling || shutDown_.load(std::memory_order_acquire)) {
        result = -ECANCELED;
      } else if (!submitLocked(*event, watch, completion.slot)) {
        return;
      }
    }
    if (event->kind() == Event::Kind::Accept) {
      // A connection reset while it waited in the accept queue is not the
      // caller's error: accept the next one.  Not when a cancel() is under
      // way: it named the operation that just ended, and would miss the
      // new one, so the event ends cancelled here, as cancel() promised.
      if (result == -ECONNABORTED && cancelling) result = -ECANCELED;
      if (result == -ECONNABORTED && !watch.retired && !shutDown_.load(std::memory_order_acquire) &&
          !submitLocked(*event, watch, kReadable))
        return;
      // Under the watch lock: the listener is open while it is not retired.
      if (result >= 0) ec = adoptConnection(static_cast<AcceptEvent&>(*event), watch, result);
    }
    if (event->kind() == Event::Kind::Connect) {
      connecting = watch.socket;  // the event owns the socket
      target = std::exchange(watch.connectTarget, nullptr);
    }
    // A ring has no readiness edges to say data arrived: a read that
    // filled its buffer says more may be waiting, so a task's next read
    // tries the socket (tryInTask) instead of parking; a short one says it
    // is drained.
    if (event->kind() == Event::Kind::Read && result > 0) {
      watch.readHint.store(static_cast<std::size_t>(result) == static_cast<ReadEvent&>(*event).size(),
                           std::memory_order_relaxed);
    }
  }
  switch (event->kind()) {
    case Event::Kind::Read:
      if (result > 0) {
        EventAccess::transferred(static_cast<ReadEvent&>(*event)) = static_cast<std::size_t>(result);
      } else {
        ec = result == 0 ? std::error_code(Errc::end_of_stream) : kernelError(result);
      }
      break;
    case Event::Kind::Write:
      if (result >= 0) {
        EventAccess::transferred(static_cast<WriteEvent&>(*event)) = static_cast<std::size_t>(result);
      } else {
        ec = kernelError(result);
      }
      break;
    case Event::Kind::Accept:
      if (result < 0) ec = kernelError(result);
      break;
    case Event::Kind::DatagramReceive:
    case Event::Kind::DatagramSend: ec = finishDatagram(*event, result, *completion_); break;
    case Event::Kind::DescriptorSend:
    case Event::Kind::DescriptorReceive: ec = finishDescriptorEvent(*event, result, *completion_); break;
    case Event::Kind::Connect:
      // APR learns the socket's addresses from its own connect, which
      // finds the socket connected (EISCONN) and records them.  Windows'
      // APR reports that as WSAEISCONN instead (and learns the peer's
      // address from getpeername() when asked): connected all the same.
      if (result == 0 && target != nullptr) {
        ec = makeAprError(apr_socket_connect(connecting, target));
        if (ec == std::errc::already_connected) ec.clear();
      }
      if (result < 0) ec = kernelError(result);
      if (ec) EventAccess::connected(static_cast<ConnectEvent&>(*event)).close();
      break;
    default: break;
  }
  complete(*event, ec);
}

std::error_code ChannelCore::adoptConnection(AcceptEvent& event, Watch& listener, int fd) noexcept {
  if (listener.retired) {
    // The listener was closed while the kernel accepted: nobody to hand
    // the connection to.
    completion_->closeDescriptor(fd);
    return std::make_error_code(std::errc::operation_canceled);
  }
  std::error_code ec;
  bool owned = false;
  std::unique_ptr<SocketState> accepted = adoptAccepted(listener.socket, static_cast<apr_os_sock_t>(fd), owned, ec);
  if (!accepted) {
    if (!owned) completion_->closeDescriptor(fd);
    return ec;
  }
  EventAccess::accepted(event) = SocketAccess::adopt(std::move(accepted));
  return {};
}

}  // namespace evchan::detail
