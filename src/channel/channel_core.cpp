// SPDX-License-Identifier: Apache-2.0
// ChannelCore: posting events by kind, trying and cancelling them.
#include "channel/channel_core.h"

#include <cstdint>
#include <optional>
#include <utility>

#include <apr_poll.h>

#include <evchan/error.h>

#include "apr/file_state.h"
#include "apr/host_lookup.h"
#include "channel/datagram_attempts.h"
#include "channel/descriptor_attempts.h"
#include "channel/io_attempts.h"

namespace evchan::detail {
namespace {

// The socket a read, write, accept or connect event works on; another
// thread may close it meanwhile, so its state is only used pinned.
// Null for other kinds.
const SocketStateSlot* socketSlotOf(Event& event) {
  switch (event.kind()) {
    case Event::Kind::Read: return &SocketAccess::slot(static_cast<ReadEvent&>(event).socket());
    case Event::Kind::Write: return &SocketAccess::slot(static_cast<WriteEvent&>(event).socket());
    case Event::Kind::Accept: return &SocketAccess::slot(static_cast<AcceptEvent&>(event).listener());
    case Event::Kind::Connect: return &SocketAccess::slot(EventAccess::connected(static_cast<ConnectEvent&>(event)));
    case Event::Kind::DatagramReceive:
    case Event::Kind::DatagramSend: return &datagramSlotOf(event);
    case Event::Kind::DescriptorSend:
    case Event::Kind::DescriptorReceive: return &descriptorSlotOf(event);
    default: return nullptr;
  }
}

// A read or write event's target must be open and its buffer real.
// `checkOpen` false: the caller keeps the target open (a SocketCall).
template <class IoEvent, class Target>
std::error_code checkTransfer(const IoEvent& event, const Target& target, bool checkOpen = true) {
  if (checkOpen && !target.isOpen()) return Errc::not_open;
  if (event.buffer() == nullptr && event.size() != 0) return Errc::null_buffer;
  return {};
}

// File offsets are off_t: 2^63 and above are refused at post() on every
// backend alike (the completion backends cannot submit them at all).
template <class FileEvent>
std::error_code checkFileTransfer(const FileEvent& event) {
  if (std::error_code ec = checkTransfer(event, event.file())) return ec;
  if (!fileOffsetFits(event.offset())) return std::make_error_code(std::errc::invalid_argument);
  return {};
}

// Checks what post() can check before the event goes in flight.  A
// stream's socket that the caller keeps alive is not checked open here
// (SocketKeeper).
std::error_code validate(Event& event, SocketKeeper keeper) {
  const bool checkOpen = keeper == SocketKeeper::post;
  switch (event.kind()) {
    case Event::Kind::Read: {
      auto& read = static_cast<ReadEvent&>(event);
      return checkTransfer(read, read.socket(), checkOpen);
    }
    case Event::Kind::Write: {
      auto& write = static_cast<WriteEvent&>(event);
      return checkTransfer(write, write.socket(), checkOpen);
    }
    case Event::Kind::FileRead: return checkFileTransfer(static_cast<FileReadEvent&>(event));
    case Event::Kind::FileWrite: return checkFileTransfer(static_cast<FileWriteEvent&>(event));
    case Event::Kind::Accept:
      return static_cast<AcceptEvent&>(event).listener().isOpen() ? std::error_code() : Errc::not_open;
    case Event::Kind::Connect: {
      const Address& address = static_cast<ConnectEvent&>(event).address();
      if (address.empty()) return Errc::no_address;
      if (address.port() < 0 || address.port() > 65535) return Errc::port_out_of_range;
      return {};
    }
    case Event::Kind::Timer:
      return static_cast<TimerEvent&>(event).delay() < Duration::zero() ? Errc::negative_timeout : std::error_code();
    case Event::Kind::Notify:
    case Event::Kind::Dispatch: return {};
    case Event::Kind::Resolve: return checkLookup(static_cast<ResolveEvent&>(event).endpoint());
    case Event::Kind::DatagramReceive:
    case Event::Kind::DatagramSend: return checkDatagram(event);
    case Event::Kind::DescriptorSend:
    case Event::Kind::DescriptorReceive: return checkDescriptorEvent(event);
  }
  return std::make_error_code(std::errc::invalid_argument);
}

// Whether a connect under way has finished (or failed), asked without waiting.
bool connectSettled(apr_socket_t* socket) {
  apr_pollfd_t descriptor{};
  descriptor.desc_type = APR_POLL_SOCKET;
  descriptor.desc.s = socket;
  descriptor.reqevents = APR_POLLOUT;
  apr_int32_t ready = 0;
  return apr_poll(&descriptor, 1, &ready, 0) == APR_SUCCESS && ready > 0;
}

// Whether a socket event takes its socket's write slot (else the read one).
bool isWriter(const Event& event) {
  const Event::Kind kind = event.kind();
  return kind == Event::Kind::Write || kind == Event::Kind::DatagramSend || kind == Event::Kind::DescriptorSend;
}

std::size_t requestedBytes(Event& event) {
  if (event.kind() == Event::Kind::Read) return static_cast<ReadEvent&>(event).size();
  if (event.kind() == Event::Kind::Write) return static_cast<WriteEvent&>(event).size();
  return 1;  // an accept, a connect, a datagram (an empty one is a datagram too), descriptors
}

// A re-posted event reports this round's bytes only, however it ends
// (cancelled, failed, or completed by a backend that sets no count).
void clearTransferred(Event& event) noexcept {
  switch (event.kind()) {
    case Event::Kind::Read: EventAccess::transferred(static_cast<ReadEvent&>(event)) = 0; break;
    case Event::Kind::Write: EventAccess::transferred(static_cast<WriteEvent&>(event)) = 0; break;
    case Event::Kind::FileRead: EventAccess::transferred(static_cast<FileReadEvent&>(event)) = 0; break;
    case Event::Kind::FileWrite: EventAccess::transferred(static_cast<FileWriteEvent&>(event)) = 0; break;
    case Event::Kind::DatagramReceive:
    case Event::Kind::DatagramSend: clearDatagram(event); break;
    case Event::Kind::DescriptorSend:
    case Event::Kind::DescriptorReceive: clearDescriptorEvent(event); break;
    default: break;
  }
}

}  // namespace

std::error_code ChannelCore::post(Event& event, bool wakesTask, SocketKeeper keeper) noexcept {
  // The event's own misuse first: one in flight says so even when its
  // socket has been closed (or the channel shut down) meanwhile.
  bool expected = false;
  if (!EventAccess::inFlight(event).compare_exchange_strong(expected, true, std::memory_order_acq_rel))
    return Errc::already_in_flight;
  EventAccess::wakesTask(event) = wakesTask;
  std::error_code refused = shutDown_.load(std::memory_order_acquire) ? Errc::channel_shut_down : validate(event, keeper);
  if (refused) {
    EventAccess::inFlight(event).store(false, std::memory_order_release);
    return refused;
  }
  EventAccess::error(event).clear();
  EventAccess::started(event) = false;
  clearTransferred(event);

  std::error_code ec;
  switch (event.kind()) {
    case Event::Kind::Read:
    case Event::Kind::Write:
    case Event::Kind::Accept:
    case Event::Kind::DatagramReceive:
    case Event::Kind::DatagramSend:
    case Event::Kind::DescriptorSend:
    case Event::Kind::DescriptorReceive: ec = postSocketEvent(event, keeper); break;
    case Event::Kind::Connect: ec = postConnect(static_cast<ConnectEvent&>(event)); break;
    case Event::Kind::Timer: ec = postTimer(static_cast<TimerEvent&>(event)); break;
    case Event::Kind::Notify: ec = postNotify(static_cast<NotifyEvent&>(event)); break;
    case Event::Kind::Dispatch: ec = postDispatch(static_cast<DispatchEvent&>(event)); break;
    case Event::Kind::FileRead:
    case Event::Kind::FileWrite: ec = postFileEvent(event); break;
    case Event::Kind::Resolve: ec = postResolve(static_cast<ResolveEvent&>(event)); break;
  }
  if (ec) EventAccess::inFlight(event).store(false, std::memory_order_release);
  return ec;
}

std::error_code ChannelCore::checkSlotLocked(Watch& watch, bool isReader) const noexcept {
  if (watch.retired) return Errc::not_open;
  // Checked under the watch lock: shutdown() sets the flag, then sweeps
  // every watch under its lock, so nothing parks after the sweep.
  if (shutDown_.load(std::memory_order_acquire)) return Errc::channel_shut_down;
  if ((isReader ? watch.reader : watch.writer) != nullptr) return Errc::socket_busy;
  return {};
}

AttemptResult ChannelCore::attemptLocked(Event& event, Watch& watch, bool isReader) noexcept {
  AttemptResult attempt;
  if (requestedBytes(event) == 0) {
    attempt.done = true;  // zero bytes: done without touching the socket
    return attempt;
  }
  std::atomic<bool>& hint = isReader ? watch.readHint : watch.writeHint;
  const bool edge = poller_->edgeTriggered();
  if (!edge || hint.load(std::memory_order_relaxed)) {
    attempt = isReader ? attemptRead(event, watch) : attemptWrite(event, watch);
    if (edge) hint.store(!attempt.drained || watch.alwaysTry, std::memory_order_relaxed);
  }
  return attempt;
}

AttemptResult ChannelCore::tryOnce(Event& event, std::error_code& ec) noexcept {
  SocketState* state = socketSlotOf(event)->get();  // kept by the caller's SocketCall
  if (state == nullptr) {
    ec = Errc::not_open;
    return {};
  }
  Watch* watch = state->watch.watchIn(*this, state->socket, ec);
  if (ec) return {};
  const bool isReader = !isWriter(event);
  // Known to be drained: nothing to try.  Read without the lock (most
  // reads of a ping-pong end here): the post that follows checks the
  // slot and tries again under it, should a readiness report have come.
  if (requestedBytes(event) != 0 && poller_->edgeTriggered() &&
      !(isReader ? watch->readHint : watch->writeHint).load(std::memory_order_relaxed))
    return {};
  std::lock_guard<std::mutex> lock(watch->mutex);
  if ((ec = checkSlotLocked(*watch, isReader))) return {};
  return attemptLocked(event, *watch, isReader);
}

std::error_code ChannelCore::postSocketEvent(Event& event, SocketKeeper keeper) noexcept {
  // Pinned until the event is parked or done: a close() on another thread
  // meanwhile waits, then cancels what was parked; one before the pin
  // leaves nothing to pin (validate() saw the socket open a moment ago).
  // A caller's SocketCall keeps the socket without a pin: its close()
  // waits for the call, whose wait it cancels.
  const SocketStateSlot& socket = *socketSlotOf(event);
  std::optional<SocketPin> pin;
  if (keeper == SocketKeeper::post) pin.emplace(socket);
  SocketState* state = pin ? pin->get() : socket.get();
  if (state == nullptr) return Errc::not_open;
  std::error_code ec;
  Watch* watch = state->watch.watchIn(*this, state->socket, ec);
  if (ec) return ec;
  const bool isReader = !isWriter(event);
  AttemptResult attempt;
  bool counted = false;
  {
    std::lock_guard<std::mutex> lock(watch->mutex);
    if ((ec = checkSlotLocked(*watch, isReader))) return ec;
    Event*& slot = isReader ? watch->reader : watch->writer;
    if (completion_ != nullptr && requestedBytes(event) != 0) {
      return submitLocked(event, *watch, isReader ? kReadable : kWritable);  // the kernel does the IO
    }
    attempt = attemptLocked(event, *watch, isReader);
    if (!attempt.done) {
      slot = &event;
      if (!poller_->edgeTriggered()) {
        if ((ec = poller_->setInterest(*watch, interestOf(*watch)))) {
          slot = nullptr;
          return ec;
        }
      }
      return {};
    }
    counted = countCompletionAtPostLocked(event);
  }
  pin.reset();
  complete(event, attempt.error);
  if (counted) completionQueued();
  return {};
}

bool ChannelCore::countCompletionAtPostLocked(Event& event) noexcept {
  // Done inside post(), its data taken: too late to refuse.  A callback
  // must still run on a worker.  Off this channel's workers it is counted
  // under the watch's lock (checkSlotLocked() saw no shutdown), as
  // cancel() counts: a shutdown whose sweep comes to this watch after us
  // keeps its workers until complete() has queued the event, which with
  // the pool gone would run the callback here.  On one of the workers,
  // the pool is there: this one.
  if (!EventAccess::callback(event) || currentWorkerChannel() == this) return false;
  completionsUnderWay_.fetch_add(1);
  return true;
}

std::error_code ChannelCore::postConnect(ConnectEvent& event) noexcept {
  if (completion_ != nullptr) return postConnectToRing(event);
  bool inProgress = false;
  std::error_code ec;
  std::unique_ptr<SocketState> state = startConnect(event.address(), inProgress, ec);
  // e.g. refused at once: the event fails, the post succeeds (unless the
  // channel has shut down meanwhile: nothing is run then).
  if (!state) return completeAtPost(event, ec);
  apr_socket_t* socket = state->socket;
  SocketState* raw = state.get();
  TcpSocket& connected = EventAccess::connected(event);
  connected = SocketAccess::adopt(std::move(state));
  if (!inProgress) {
    const std::error_code refused = completeAtPost(event, {});
    if (refused) connected.close();
    return refused;
  }
  Watch* watch = raw->watch.watchIn(*this, socket, ec);
  bool settled = false;
  bool counted = false;
  std::error_code result;
  if (!ec) {
    std::lock_guard<std::mutex> lock(watch->mutex);
    if (shutDown_.load(std::memory_order_acquire)) {
      ec = Errc::channel_shut_down;
    } else if (poller_->edgeTriggered() && connectSettled(socket)) {
      // Registering the socket reported its writability at once, and the
      // poller may have handled (and dropped) that edge before the event
      // was parked here: finish now instead of waiting for an edge that
      // has passed.
      settled = true;
      result = attemptWrite(event, *watch).error;
      counted = countCompletionAtPostLocked(event);
    } else {
      // Never try a connect before the poller says writable: SO_ERROR
      // reads 0 while it is still under way.
      watch->writer = &event;
      if (!poller_->edgeTriggered() && (ec = poller_->setInterest(*watch, interestOf(*watch)))) {
        watch->writer = nullptr;
      }
    }
  }
  if (ec || (settled && result)) connected.close();
  if (settled) complete(event, result);
  if (counted) completionQueued();
  return ec;
}

std::error_code ChannelCore::postTimer(TimerEvent& event) noexcept {
  if (event.delay() == Duration::zero()) return completeAtPost(event, {});
  const Deadline deadline = deadlineAfter(event.delay());
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_) return Errc::channel_shut_down;
  timers_.addLocked(event, deadline);
  if (deadline == kNoDeadline) return {};  // never due: nobody need poll for it (a join parks on one)
  if (polling_ && deadline < pollDeadline_) {
    wakePollerLocked();  // the poller sleeps past this timer
  } else if (!polling_) {
    wakeIdleLocked();  // it becomes the poller, with this deadline
  }
  return {};
}

std::error_code ChannelCore::postNotify(NotifyEvent& event) noexcept {
  // Its waiters are its consumers; only a callback makes it a completion.
  if (!EventAccess::callback(event)) {
    // Handed back before any waiter can wake: a waiter may destroy the
    // event as soon as wait() returns.
    EventAccess::signal(event, true, true);
    return {};
  }
  // The callback runs on a worker: off them, the pool is kept until the
  // event is queued, or, shutdown() begun, it is neither signalled nor run.
  const bool counted = currentWorkerChannel() != this;
  if (counted && !keepPoolForCompletion()) return Errc::channel_shut_down;
  EventAccess::signal(event, true);
  complete(event, {});
  if (counted) completionQueued();
  return {};
}

std::error_code ChannelCore::postDispatch(DispatchEvent& event) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_) return Errc::channel_shut_down;
  enqueueLocked(event);
  return {};
}

std::error_code ChannelCore::postFileEvent(Event& event) noexcept {
  // Checked under the lock that shutdown() takes to set stopping_, before
  // the poller is touched: a shutdown on another thread may have ended it
  // since post() checked, and nothing is submitted after its
  // drainFileOperations().
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_) return Errc::channel_shut_down;
  if (completesFiles_) {
    EventAccess::started(event) = true;  // the IO is the backend's: nothing left for a worker to do
    const std::error_code ec = poller_->submitFile(event, *this);
    if (ec != std::errc::function_not_supported) return ec;
    EventAccess::started(event) = false;  // a file the backend cannot take: a worker's after all
  }
  // Run on a worker, which counts as blocked meanwhile (runCompletion).
  enqueueLocked(event);
  return {};
}

bool ChannelCore::completesFileOperations() const noexcept { return completesFiles_; }

std::error_code ChannelCore::postResolve(ResolveEvent& event) noexcept {
  std::vector<Address>& addresses = EventAccess::addresses(event);
  addresses.clear();
  std::error_code result;
  // A numeric host never leaves the posting thread.
  if (resolveNumeric(event.endpoint(), event.family(), addresses, result)) return completeAtPost(event, result);
  return resolver_.submit(event);
}

bool ChannelCore::cancel(Event& event) noexcept {
  if (event.kind() == Event::Kind::Resolve) {
    // Counted in completionsUnderWay_ under the resolver's lock, as a socket
    // event is below under its watch's: a shutdown's close() that comes
    // after no longer finds the event, and its workers must stay until it
    // is queued, or the task it resumes would run here.
    if (!resolver_.cancel(static_cast<ResolveEvent&>(event), completionsUnderWay_)) return false;  // completing already
    complete(event, std::make_error_code(std::errc::operation_canceled));
    completionQueued();
    return true;
  }
  if (event.kind() == Event::Kind::Timer) {
    auto& timer = static_cast<TimerEvent&>(event);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!timers_.cancelLocked(timer)) {
        return false;  // it fired, or the shutdown swept it
      }
      EventAccess::error(event) = std::make_error_code(std::errc::operation_canceled);
      // Queued in the same critical section as the erase: a shutdown that
      // did not sweep this timer keeps its workers until they have run it
      // (a task it resumes must not run on this thread).  On one of this
      // channel's workers (a task that ends and wakes its joiner), its own
      // batch, which it runs next: no poller woken for it (scheduleLocked).
      if (EventAccess::callback(event)) {
        scheduleLocked(event);
        return true;
      }
    }
    deliver(event);
    return true;
  }
  const SocketStateSlot* socket = socketSlotOf(event);
  if (socket == nullptr) return false;
  SocketPin pin(*socket);
  SocketState* state = pin.get();
  Watch* watch = state != nullptr ? state->watch.registeredIn(*this) : nullptr;
  if (watch == nullptr) return false;
  // The kernel's completion hands the event back, cancelled or not.
  if (completion_ != nullptr) return cancelInRing(event, *watch);
  {
    std::lock_guard<std::mutex> lock(watch->mutex);
    Event** slot = watch->reader == &event ? &watch->reader : watch->writer == &event ? &watch->writer : nullptr;
    if (slot == nullptr) return false;
    *slot = nullptr;
    // Counted under the watch's lock: a shutdown whose sweep comes to this
    // watch after us no longer finds the event, so its workers must wait
    // until it is queued.  Otherwise they could all leave meanwhile and
    // complete() would run the task it resumes here, on the cancelling
    // thread, inside its locks (a WaitCancellation's or a TaskState's).
    completionsUnderWay_.fetch_add(1);
    if (!poller_->edgeTriggered()) poller_->setInterest(*watch, interestOf(*watch));
  }
  pin.release();  // before the close below, which waits for pins
  if (event.kind() == Event::Kind::Connect) EventAccess::connected(static_cast<ConnectEvent&>(event)).close();
  complete(event, std::make_error_code(std::errc::operation_canceled));
  completionQueued();
  return true;
}

void ChannelCore::cancelWaitedEvent(CancellableWait& wait) noexcept {
  static_cast<ChannelCore*>(wait.channel)->cancel(*static_cast<Event*>(wait.event));
}

void ChannelCore::completionQueued() noexcept {
  // Every access to the count, and shutDown_'s store and this load, are
  // sequentially consistent: a worker looks at the count, deciding to
  // leave, only after shutDown_ was set, so when this load finds no
  // shutdown, no worker has seen this count yet and none waits for it.
  if (completionsUnderWay_.fetch_sub(1) != 1 || !shutDown_.load()) return;
  // The last one: a shutdown's workers that stayed for it may leave now,
  // the idle ones and the poller once they look again.
  std::lock_guard<std::mutex> lock(mutex_);
  workAvailable_.notify_all();
  if (polling_) wakePollerLocked();
}

}  // namespace evchan::detail
