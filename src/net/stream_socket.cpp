// SPDX-License-Identifier: Apache-2.0
// StreamSocket and StreamListener: reads, writes, cancel, close and the
// timeout of every stream socket and listener, on a non-blocking APR socket.
#include <evchan/stream_socket.h>

#include <evchan/error.h>
#include <evchan/socket_events.h>
#include <evchan/system_error.h>
#include <evchan/task.h>

#include "apr/socket_io.h"
#include "apr/socket_state.h"
#include "net/closed_under_mark.h"
#include "net/pieces.h"
#include "net/socket_call.h"
#include "poller/event_access.h"
#include "task/await.h"

namespace evchan {

using detail::Deadline;
using detail::SocketState;

namespace {

std::error_code checkBuffer(const SocketState* state, const void* buffer, std::size_t size) {
  if (state == nullptr) return Errc::not_open;
  if (buffer == nullptr && size != 0) return Errc::null_buffer;
  return {};
}

}  // namespace

StreamSocket::StreamSocket() noexcept = default;
StreamSocket::StreamSocket(std::unique_ptr<SocketState> state) noexcept : state_(std::move(state)) {}
StreamSocket::~StreamSocket() { close(); }
StreamSocket::StreamSocket(StreamSocket&& other) noexcept = default;
StreamSocket& StreamSocket::operator=(StreamSocket&& other) noexcept = default;

namespace {

// A task's event posted after a close() that came during the call (the
// call began on the open socket) is refused with not_open: that close
// cancelled the call, which ends with operation_canceled as on a thread.
void closedDuringCall(const detail::SocketCall& call, std::error_code& ec) noexcept {
  if (ec == Errc::not_open && call.state() != nullptr) ec = std::make_error_code(std::errc::operation_canceled);
}

// readSome() within `call`.
std::size_t readWithin(StreamSocket& socket, detail::SocketCall& call, void* buffer, std::size_t size,
                       std::error_code& ec) noexcept {
  SocketState* state = call.state();
  if ((ec = checkBuffer(state, buffer, size)) || size == 0) return 0;
  if (inTask()) {
    if (detail::fairnessYield(ec)) return 0;
    // Through the task's channel: the socket is tried unless it is known
    // to be drained (a round trip then costs no EAGAIN), and if the read
    // would block the task waits for it (the worker runs other tasks).
    ReadEvent read(socket, buffer, size);
    if (detail::tryInTask(read, ec) || call.awaitInTask(read, ec)) {
      closedDuringCall(call, ec);
      return ec ? 0 : read.bytesTransferred();
    }
  }
  const Deadline deadline = detail::deadlineAfter(state->timeout);
  for (;;) {
    apr_size_t length = size;
    const apr_status_t status = apr_socket_recv(state->socket, static_cast<char*>(buffer), &length);
    if (length > 0) return length;
    if (APR_STATUS_IS_EOF(status)) {
      ec = Errc::end_of_stream;
      return 0;
    }
    if (!APR_STATUS_IS_EAGAIN(status)) {
      ec = makeAprError(status);
      return 0;
    }
    if ((ec = call.waitOnThread(false, deadline))) return 0;
  }
}

// The gather writeSome() within `call`.
std::size_t writeWithin(StreamSocket& socket, detail::SocketCall& call, const ConstBuffer* buffers, std::size_t count,
                        std::error_code& ec) noexcept {
  SocketState* state = call.state();
  if (state == nullptr) {
    ec = Errc::not_open;
    return 0;
  }
  if ((ec = detail::checkPieces(buffers, count))) return 0;
  detail::skipEmptyPieces(buffers, count);
  if (count == 0 || detail::fairnessYield(ec)) return 0;
  for (;;) {
    std::size_t sent = 0;
    ec = detail::sendGather(detail::nativeSocket(*state), buffers, count, sent);
    if (sent > 0 || ec != std::errc::resource_unavailable_try_again) return ec ? 0 : sent;
    if (inTask()) {
      // The send buffer is full: the task waits for a WriteEvent (which
      // writes when there is room) instead of blocking its worker.
      WriteEvent write(socket, buffers, count);
      if (call.awaitInTask(write, ec)) {
        closedDuringCall(call, ec);
        return ec ? 0 : write.bytesTransferred();
      }
    }
    if ((ec = call.waitOnThread(true, detail::deadlineAfter(state->timeout)))) return 0;
  }
}

// See StreamSocket::cancelMark().
std::uint64_t generationOfMark(Stream::CancelMark mark) noexcept { return mark == 0 ? 0 : mark - 1; }

bool closedSinceMark(const detail::SocketCall& call, Stream::CancelMark mark, std::error_code& ec) noexcept {
  if (call.state() != nullptr || mark == 0) return false;
  ec = detail::closedUnderMark(mark);
  return true;
}

}  // namespace

std::size_t StreamSocket::readSome(void* buffer, std::size_t size, std::error_code& ec) noexcept {
  detail::SocketCall call(state_);
  return readWithin(*this, call, buffer, size, ec);
}

std::size_t StreamSocket::readSomeSince(CancelMark mark, void* buffer, std::size_t size,
                                        std::error_code& ec) noexcept {
  detail::SocketCall call(state_, generationOfMark(mark));
  if (closedSinceMark(call, mark, ec)) return 0;
  return readWithin(*this, call, buffer, size, ec);
}

std::size_t StreamSocket::writeSome(const void* buffer, std::size_t size, std::error_code& ec) noexcept {
  const ConstBuffer piece{buffer, size};
  return StreamSocket::writeSome(&piece, 1, ec);  // one piece goes out with send(2)
}

std::size_t StreamSocket::writeSome(const ConstBuffer* buffers, std::size_t count, std::error_code& ec) noexcept {
  detail::SocketCall call(state_);
  return writeWithin(*this, call, buffers, count, ec);
}

std::size_t StreamSocket::writeSomeSince(CancelMark mark, const ConstBuffer* buffers, std::size_t count,
                                         std::error_code& ec) noexcept {
  detail::SocketCall call(state_, generationOfMark(mark));
  if (closedSinceMark(call, mark, ec)) return 0;
  return writeWithin(*this, call, buffers, count, ec);
}

// The mark is the cancel() generation plus one while the socket is open,
// 0 once it is closed (or closing): a step of readExactly() or writeAll()
// that finds the socket closed though it was open when the call began
// was ended by a close() under way, which cancels it (operation_canceled),
// as it does a single call; not_open is for calls begun after the close.
Stream::CancelMark StreamSocket::cancelMark(bool) const noexcept {
  const detail::SocketPin pin(state_);
  if (pin.get() == nullptr || pin.get()->cancellation.closing()) return 0;
  return pin.get()->cancellation.generation() + 1;
}

std::string StreamSocket::peerName() const {
  const detail::SocketPin pin(state_);
  return detail::peerOf(pin.get());
}

void StreamSocket::shutdownWrite(std::error_code& ec) noexcept {
  const detail::SocketPin pin(state_);
  if (pin.get() == nullptr) {
    ec = Errc::not_open;
    return;
  }
  ec = makeAprError(apr_socket_shutdown(pin.get()->socket, APR_SHUTDOWN_WRITE));
}

void StreamSocket::shutdownWrite() {
  std::error_code ec;
  shutdownWrite(ec);
  throwIfError(ec, "shutdown", peerName());
}

void StreamSocket::cancel() noexcept { detail::cancelSocket(state_); }

void StreamSocket::close() noexcept { detail::closeSocket(state_); }

bool StreamSocket::isOpen() const noexcept { return detail::socketOpen(state_); }

void StreamSocket::setTimeout(Duration timeout, std::error_code& ec) noexcept {
  const detail::SocketPin pin(state_);
  ec = detail::setTimeout(pin.get(), timeout);
}

void StreamSocket::setTimeout(Duration timeout) {
  std::error_code ec;
  setTimeout(timeout, ec);
  throwIfError(ec, "set timeout", peerName());
}

Duration StreamSocket::timeout() const noexcept {
  const detail::SocketPin pin(state_);
  return pin.get() ? pin.get()->timeout.load() : kInfiniteTimeout;
}

namespace detail {

std::unique_ptr<SocketState> acceptWithin(AcceptEvent& event, SocketCall& call, std::error_code& ec) noexcept {
  SocketState* state = call.state();
  if (state == nullptr) {
    ec = Errc::not_open;
    return nullptr;
  }
  if (inTask()) {
    // The task waits for the AcceptEvent; its worker runs other tasks meanwhile.
    if (call.awaitInTask(event, ec)) return ec ? nullptr : SocketAccess::release(EventAccess::accepted(event));
  }
  const Deadline deadline = deadlineAfter(state->timeout);
  for (;;) {
    if (auto accepted = acceptOnce(state->socket, ec)) return accepted;
    if (ec != std::errc::resource_unavailable_try_again) return nullptr;
    if ((ec = call.waitOnThread(false, deadline))) return nullptr;
  }
}

}  // namespace detail

StreamListener::StreamListener() noexcept = default;
StreamListener::~StreamListener() { close(); }
StreamListener::StreamListener(StreamListener&& other) noexcept = default;
StreamListener& StreamListener::operator=(StreamListener&& other) noexcept = default;

void StreamListener::cancel() noexcept { detail::cancelSocket(state_); }

void StreamListener::close() noexcept { detail::closeSocket(state_); }

bool StreamListener::isOpen() const noexcept { return detail::socketOpen(state_); }

std::string StreamListener::listenerName() const {
  const detail::SocketPin pin(state_);
  return detail::peerOf(pin.get());
}

void StreamListener::setTimeout(Duration timeout, std::error_code& ec) noexcept {
  const detail::SocketPin pin(state_);
  ec = detail::setTimeout(pin.get(), timeout);
}

void StreamListener::setTimeout(Duration timeout) {
  std::error_code ec;
  setTimeout(timeout, ec);
  throwIfError(ec, "set timeout", listenerName());
}

Duration StreamListener::timeout() const noexcept {
  const detail::SocketPin pin(state_);
  return pin.get() ? pin.get()->timeout.load() : kInfiniteTimeout;
}

}  // namespace evchan
