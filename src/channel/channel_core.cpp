// ChannelCore: posting, completion, polling, sockets and shutdown.
#include "channel/channel_core.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <utility>

#include <apr_poll.h>

#include <evchan/error.h>

#include "apr/cpu_parallelism.h"
#include "apr/file_state.h"
#include "channel/io_attempts.h"

namespace evchan::detail {
namespace {

unsigned interestOf(const Watch& watch) {
  return (watch.reader != nullptr ? kReadable : 0u) | (watch.writer != nullptr ? kWritable : 0u);
}

// The socket a read, write, accept or connect event works on; another
// thread may close it meanwhile, so its state is only used pinned.
// Null for other kinds.
const SocketStateSlot* socketSlotOf(Event& event) {
  switch (event.kind()) {
    case Event::Kind::Read: return &SocketAccess::slot(static_cast<ReadEvent&>(event).socket());
    case Event::Kind::Write: return &SocketAccess::slot(static_cast<WriteEvent&>(event).socket());
    case Event::Kind::Accept: return &SocketAccess::slot(static_cast<AcceptEvent&>(event).listener());
    case Event::Kind::Connect: return &SocketAccess::slot(EventAccess::connected(static_cast<ConnectEvent&>(event)));
    default: return nullptr;
  }
}

// A read or write event's target must be open and its buffer real.
template <class IoEvent, class Target>
std::error_code checkTransfer(const IoEvent& event, const Target& target) {
  if (!target.isOpen()) return Errc::not_open;
  if (event.buffer() == nullptr && event.size() != 0) return Errc::null_buffer;
  return {};
}

// File offsets are off_t: 2^63 and above are refused at post() on every
// backend alike (the completion backends cannot submit them at all).
template <class FileEvent>
std::error_code checkFileTransfer(const FileEvent& event) {
  if (std::error_code ec = checkTransfer(event, event.file())) return ec;
  if (event.offset() > static_cast<std::uint64_t>(INT64_MAX)) return std::make_error_code(std::errc::invalid_argument);
  return {};
}

// Checks what post() can check before the event goes in flight.
std::error_code validate(Event& event) {
  switch (event.kind()) {
    case Event::Kind::Read: {
      auto& read = static_cast<ReadEvent&>(event);
      return checkTransfer(read, read.socket());
    }
    case Event::Kind::Write: {
      auto& write = static_cast<WriteEvent&>(event);
      return checkTransfer(write, write.socket());
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

std::size_t requestedBytes(Event& event) {
  if (event.kind() == Event::Kind::Read) return static_cast<ReadEvent&>(event).size();
  if (event.kind() == Event::Kind::Write) return static_cast<WriteEvent&>(event).size();
  return 1;
}

// The channels shut down and not yet destroyed, where ~Event looks for an
// event still held for getEvent().  Immortal, like the stack pools: a
// channel that static destruction tears down must still find it.
struct ShutDownChannels {
  std::mutex mutex;
  std::vector<ChannelCore*> channels;
};

ShutDownChannels& shutDownChannels() {
  static ShutDownChannels* const registry = new ShutDownChannels;  // immortal, on purpose
  return *registry;
}

}  // namespace

std::shared_ptr<ChannelCore> ChannelCore::create(const EventChannelOptions& options, std::error_code& ec,
                                                 int* threadsStarted) {
  if (options.initialThreads < 0 || options.maxThreads < 0 || options.idleTimeout < Duration::zero() ||
      options.stuckWorkerGrace < Duration::zero() ||
      (options.maxThreads > 0 && options.initialThreads > options.maxThreads)) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return nullptr;
  }
  std::shared_ptr<ChannelCore> core(new ChannelCore(options, detectCpuParallelism()));
  if (core->initial_ > core->max_) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return nullptr;
  }
  core->poller_ = createPoller(options.backend, ec);
  if (!core->poller_) return nullptr;
  core->backend_ = core->poller_->kind();
  core->completion_ = core->poller_->completions();
  core->completesFiles_ = core->poller_->completesFileOperations();
  // Before the workers: they report to it.  Without it the pool still
  // compensates for the blocking calls it is told about.
  if (core->monitored_ && !core->monitor_.start()) {
    std::fprintf(stderr, "evchan: no thread for the stuck-worker monitor\n");
  }
  int started = 0;
  {
    std::lock_guard<std::mutex> lock(core->mutex_);
    for (int i = 0; i < core->initial_ && core->threads_ == i; ++i) core->startWorkerLocked();
    started = core->threads_;
  }
  if (threadsStarted != nullptr) *threadsStarted = started;
  if (started < core->initial_) {
    // A pool short of what was asked would be reported as complete: stop
    // and join the workers that did start.
    core->shutdown();
    ec = std::make_error_code(std::errc::resource_unavailable_try_again);
    return nullptr;
  }
  ec.clear();
  return core;
}

ChannelCore::ChannelCore(const EventChannelOptions& options, int cpus)
    : options_(options),
      cpus_(cpus),
      initial_(options.initialThreads > 0 ? options.initialThreads : cpus),
      max_(options.maxThreads > 0 ? options.maxThreads
                                  : std::min(kMaxWorkerThreads, std::max(64, initial_ > INT_MAX / 16 ? INT_MAX : 16 * initial_))),
      monitored_(options.stuckWorkerGrace > Duration::zero()),
      monitor_(options.stuckWorkerGrace, [this] { return markStuckWorkers(); }) {}

ChannelCore::~ChannelCore() {
  shutdown();
  releaseHeldEvents();
  // Only a worker can be running here: the last reference was its own.
  for (std::thread& worker : workers_) {
    if (worker.get_id() == std::this_thread::get_id()) worker.detach(); else if (worker.joinable()) worker.join();
  }
  for (Watch* list : {liveWatches_, retiredWatches_}) {
    while (list != nullptr) {
      Watch* next = list->next;
      delete list;
      list = next;
    }
  }
}

std::error_code ChannelCore::post(Event& event) noexcept {
  if (shutDown_.load(std::memory_order_acquire)) return Errc::channel_shut_down;
  if (std::error_code ec = validate(event)) return ec;
  bool expected = false;
  if (!EventAccess::inFlight(event).compare_exchange_strong(expected, true, std::memory_order_acq_rel))
    return Errc::already_in_flight;
  EventAccess::error(event).clear();
  EventAccess::started(event) = false;

  std::error_code ec;
  switch (event.kind()) {
    case Event::Kind::Read:
    case Event::Kind::Write:
    case Event::Kind::Accept: ec = postSocketEvent(event); break;
    case Event::Kind::Connect: ec = postConnect(static_cast<ConnectEvent&>(event)); break;
    case Event::Kind::Timer: ec = postTimer(static_cast<TimerEvent&>(event)); break;
    case Event::Kind::Notify: postNotify(static_cast<NotifyEvent&>(event)); break;
    case Event::Kind::Dispatch: ec = postDispatch(static_cast<DispatchEvent&>(event)); break;
    case Event::Kind::FileRead:
    case Event::Kind::FileWrite: ec = postFileEvent(event); break;
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
  bool& hint = isReader ? watch.readHint : watch.writeHint;
  const bool edge = poller_->edgeTriggered();
  if (!edge || hint) {
    attempt = isReader ? attemptRead(event, watch) : attemptWrite(event, watch);
    if (edge) hint = !attempt.drained || watch.hungUp;
  }
  return attempt;
}

AttemptResult ChannelCore::tryOnce(Event& event, std::error_code& ec) noexcept {
  const SocketPin pin(*socketSlotOf(event));
  SocketState* state = pin.get();
  if (state == nullptr) {
    ec = Errc::not_open;
    return {};
  }
  Watch* watch = state->watch.watchIn(*this, state->socket, ec);
  if (ec) return {};
  const bool isReader = event.kind() != Event::Kind::Write;
  std::lock_guard<std::mutex> lock(watch->mutex);
  if ((ec = checkSlotLocked(*watch, isReader))) return {};
  return attemptLocked(event, *watch, isReader);
}

std::error_code ChannelCore::postSocketEvent(Event& event) noexcept {
  // Pinned until the event is parked or done: a close() on another thread
  // meanwhile waits, then cancels what was parked; one before the pin
  // leaves nothing to pin (validate() saw the socket open a moment ago).
  SocketPin pin(*socketSlotOf(event));
  SocketState* state = pin.get();
  if (state == nullptr) return Errc::not_open;
  std::error_code ec;
  Watch* watch = state->watch.watchIn(*this, state->socket, ec);
  if (ec) return ec;
  const bool isReader = event.kind() != Event::Kind::Write;
  AttemptResult attempt;
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
  }
  // A callback that complete() runs here (the pool gone) may close the socket.
  pin.release();
  complete(event, attempt.error);
  return {};
}

std::error_code ChannelCore::postConnect(ConnectEvent& event) noexcept {
  if (completion_ != nullptr) return postConnectToRing(event);
  bool inProgress = false;
  std::error_code ec;
  std::unique_ptr<SocketState> state = startConnect(event.address(), inProgress, ec);
  if (!state) {
    complete(event, ec);  // e.g. refused at once: the event fails, the post succeeded
    return {};
  }
  apr_socket_t* socket = state->socket;
  SocketState* raw = state.get();
  TcpSocket& connected = EventAccess::connected(event);
  connected = SocketAccess::adopt(std::move(state));
  if (!inProgress) {
    complete(event, {});
    return {};
  }
  Watch* watch = raw->watch.watchIn(*this, socket, ec);
  bool settled = false;
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
  return ec;
}

std::error_code ChannelCore::postTimer(TimerEvent& event) noexcept {
  if (event.delay() == Duration::zero()) {
    complete(event, {});
    return {};
  }
  const Deadline deadline = deadlineAfter(event.delay());
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_) return Errc::channel_shut_down;
  timers_.addLocked(event, deadline);
  if (polling_ && deadline < pollDeadline_) {
    poller_->wakeup();  // the poller sleeps past this timer
  } else if (!polling_) {
    wakeIdleLocked();  // it becomes the poller, with this deadline
  }
  return {};
}

void ChannelCore::postNotify(NotifyEvent& event) noexcept {
  // Its waiters are its consumers; only a callback makes it a completion.
  if (EventAccess::callback(event)) {
    EventAccess::signal(event, true);
    complete(event, {});
  } else {
    // Handed back before any waiter can wake: a waiter may destroy the
    // event as soon as wait() returns.
    EventAccess::signal(event, true, true);
  }
}

std::error_code ChannelCore::postDispatch(DispatchEvent& event) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_) return Errc::channel_shut_down;
  enqueueLocked(event);
  return {};
}

std::error_code ChannelCore::postFileEvent(Event& event) noexcept {
  if (event.kind() == Event::Kind::FileRead) {
    EventAccess::transferred(static_cast<FileReadEvent&>(event)) = 0;
  } else {
    EventAccess::transferred(static_cast<FileWriteEvent&>(event)) = 0;
  }
  // Checked under the lock that shutdown() takes to set stopping_, before
  // the poller is touched: a shutdown on another thread may have ended it
  // since post() checked, and nothing is submitted after its
  // drainFileOperations().
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_) return Errc::channel_shut_down;
  if (completesFiles_) {
    EventAccess::started(event) = true;  // the IO is the backend's: nothing left for a worker to do
    return poller_->submitFile(event, *this);
  }
  // Run on a worker, which counts as blocked meanwhile (runCompletion).
  enqueueLocked(event);
  return {};
}

void ChannelCore::operationCompleted(Event& event, std::error_code result) noexcept { complete(event, result); }

bool ChannelCore::completesFileOperations() const noexcept { return completesFiles_; }

void ChannelCore::performFileOperation(Event& event) noexcept {
  const FileState* file = nullptr;
  std::size_t done = 0;
  std::error_code ec;
  enterBlocking();
  if (event.kind() == Event::Kind::FileRead) {
    auto& read = static_cast<FileReadEvent&>(event);
    file = FileAccess::state(read.file());
    ec = file != nullptr ? readOnce(*file, read.offset(), read.buffer(), read.size(), done) : Errc::not_open;
    EventAccess::transferred(read) = done;
  } else {
    auto& write = static_cast<FileWriteEvent&>(event);
    file = FileAccess::state(write.file());
    ec = file != nullptr ? writeOnce(*file, write.offset(), write.buffer(), write.size(), done) : Errc::not_open;
    EventAccess::transferred(write) = done;
  }
  leaveBlocking();
  EventAccess::error(event) = ec;
}

void ChannelCore::complete(Event& event, std::error_code result) noexcept {
  EventAccess::error(event) = result;
  if (!EventAccess::callback(event)) {
    deliver(event);
    return;
  }
  schedule(event);
}

bool ChannelCore::cancel(Event& event) noexcept {
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
      // (a task it resumes must not run on this thread).
      if (EventAccess::callback(event)) {
        enqueueLocked(event);
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
    if (!poller_->edgeTriggered()) poller_->setInterest(*watch, interestOf(*watch));
  }
  pin.release();  // before the close below, which waits for pins
  if (event.kind() == Event::Kind::Connect) EventAccess::connected(static_cast<ConnectEvent&>(event)).close();
  complete(event, std::make_error_code(std::errc::operation_canceled));
  return true;
}

void ChannelCore::schedule(Event& event) noexcept {
  if (enqueueLocal(event)) return;
  scheduleShared(event);
}

void ChannelCore::scheduleShared(Event& event) noexcept {
  std::unique_lock<std::mutex> lock(mutex_);
  if (stopping_ && threads_ == 0) {
    // The pool is gone (a socket closed after shutdown): run it here.
    lock.unlock();
    runCompletion(event);
    return;
  }
  enqueueLocked(event);
}

void ChannelCore::deliver(Event& event) noexcept {
  {
    std::lock_guard<std::mutex> lock(readyMutex_);
    if (ownerGone_) {
      // Nobody can call getEvent() any more: back to its owner at once.
      EventAccess::inFlight(event).store(false, std::memory_order_release);
      return;
    }
    ready_.push(event);
  }
  readyAvailable_.notify_one();
}

void ChannelCore::releaseHeldEvents() noexcept {
  ShutDownChannels& registry = shutDownChannels();
  std::lock_guard<std::mutex> lock(registry.mutex);
  {
    std::lock_guard<std::mutex> ready(readyMutex_);
    ownerGone_ = true;
    while (Event* event = ready_.pop()) EventAccess::inFlight(*event).store(false, std::memory_order_release);
  }
  readyAvailable_.notify_all();
  registry.channels.erase(std::remove(registry.channels.begin(), registry.channels.end(), this),
                          registry.channels.end());
}

bool ChannelCore::forgetHeldEvent(Event& event) noexcept {
  ShutDownChannels& registry = shutDownChannels();
  // A channel listed here is alive: it leaves the list, under this lock,
  // before it is destroyed.
  std::lock_guard<std::mutex> lock(registry.mutex);
  if (!event.inFlight()) return true;  // handed back meanwhile
  for (ChannelCore* core : registry.channels) {
    std::lock_guard<std::mutex> ready(core->readyMutex_);
    if (core->takeFromReadyLocked(event)) {
      EventAccess::inFlight(event).store(false, std::memory_order_release);
      return true;
    }
  }
  return false;
}

bool ChannelCore::takeFromReadyLocked(Event& event) noexcept {
  // Linear, and only on this rare path: the queue is a singly linked FIFO.
  EventQueue kept;
  bool found = false;
  while (Event* queued = ready_.pop()) {
    if (queued == &event) found = true; else kept.push(*queued);
  }
  ready_ = kept;
  return found;
}

void ChannelCore::runCompletion(Event& event) noexcept {
  if (EventAccess::runnable(event)) {
    static_cast<RunnableEvent&>(event).run();
    return;
  }
  // Work the channel does on a worker before the event completes: a
  // DispatchEvent's function, a file IO no backend completes.
  const bool file = event.kind() == Event::Kind::FileRead || event.kind() == Event::Kind::FileWrite;
  if ((event.kind() == Event::Kind::Dispatch || file) && !EventAccess::started(event)) {
    EventAccess::started(event) = true;
    if (file) {
      performFileOperation(event);
    } else {
      try {
        EventAccess::function(static_cast<DispatchEvent&>(event))();
      } catch (...) {
        EventAccess::error(event) = std::make_error_code(std::errc::state_not_recoverable);
      }
    }
    if (!EventAccess::callback(event)) {
      deliver(event);
      return;
    }
  }
  // Copied: once the event is out of flight the callback may re-post it,
  // and another worker may complete it while this one still runs.
  Event::Callback callback = EventAccess::callback(event);
  EventAccess::inFlight(event).store(false, std::memory_order_release);
  try {
    callback(event);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "evchan: exception escaped an event callback: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "evchan: exception escaped an event callback\n");
  }
}

Event* ChannelCore::getEvent(Duration timeout) {
  // The owner may destroy the EventChannel while this thread waits: the
  // core lives on until the last waiter has left (see ~EventChannel).
  const std::shared_ptr<ChannelCore> keepAlive = shared_from_this();
  const Deadline deadline = deadlineAfter(timeout < Duration::zero() ? Duration::zero() : timeout);
  // A worker of this channel waiting here would keep shutdown() waiting for it.
  const bool ownWorker = currentWorkerChannel() == this;
  enterBlocking();
  std::unique_lock<std::mutex> lock(readyMutex_);
  inGetEvent_.fetch_add(1, std::memory_order_relaxed);
  Event* event = nullptr;
  for (;;) {
    if ((event = ready_.pop()) != nullptr) break;
    if (readyClosed_ || ownerGone_ || (ownWorker && shutDown_.load(std::memory_order_acquire))) break;
    if (deadline == kNoDeadline) {
      readyAvailable_.wait(lock);
    } else if (readyAvailable_.wait_until(lock, deadline) == std::cv_status::timeout) {
      event = ready_.pop();
      break;
    }
  }
  inGetEvent_.fetch_sub(1, std::memory_order_relaxed);
  lock.unlock();
  leaveBlocking();
  if (event != nullptr) EventAccess::inFlight(*event).store(false, std::memory_order_release);
  return event;
}

void ChannelCore::handleReadiness(const Readiness& readiness) noexcept {
  Watch& watch = *readiness.watch;
  Event* done[2];
  std::error_code results[2];
  int count = 0;
  {
    std::lock_guard<std::mutex> lock(watch.mutex);
    if (watch.retired) return;
    const bool edge = poller_->edgeTriggered();
    if (readiness.flags & kHungUp) watch.hungUp = true;
    if (readiness.flags & kReadable) {
      watch.readHint = true;
      if (watch.reader != nullptr) {
        const AttemptResult attempt = attemptRead(*watch.reader, watch);
        if (edge) watch.readHint = !attempt.drained || watch.hungUp;
        if (attempt.done) {
          done[count] = std::exchange(watch.reader, nullptr);
          results[count++] = attempt.error;
        }
      }
    }
    if (readiness.flags & kWritable) {
      watch.writeHint = true;
      if (watch.writer != nullptr) {
        const AttemptResult attempt = attemptWrite(*watch.writer, watch);
        if (edge) watch.writeHint = !attempt.drained || watch.hungUp;
        if (attempt.done) {
          done[count] = std::exchange(watch.writer, nullptr);
          results[count++] = attempt.error;
        }
      }
    }
    if (!edge && count > 0) poller_->setInterest(watch, interestOf(watch));
  }
  for (int i = 0; i < count; ++i) {
    if (done[i]->kind() == Event::Kind::Connect && results[i]) {
      EventAccess::connected(static_cast<ConnectEvent&>(*done[i])).close();
    }
    complete(*done[i], results[i]);
  }
}

void ChannelCore::pollOnce(Deadline deadline) noexcept {
  freeRetiredWatches();
  if (completion_ != nullptr) {
    pollCompletions(deadline);
  } else {
    if (poller_->wait(readyBatch_, deadline)) {
      std::this_thread::yield();  // a failing poller must not spin a core flat out
    }
    for (const Readiness& readiness : readyBatch_) handleReadiness(readiness);
  }

  std::vector<TimerEvent*> expired;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const Deadline now = Clock::now();
    timers_.takeDueLocked(now, expired);
  }
  for (TimerEvent* timer : expired) complete(*timer, {});
}

Watch* ChannelCore::addWatch(apr_socket_t* socket, std::error_code& ec) {
  apr_os_sock_t fd;
  if ((ec = makeAprError(apr_os_sock_get(&fd, socket)))) return nullptr;
  std::lock_guard<std::mutex> lock(watchesMutex_);
  if (shutDown_.load(std::memory_order_acquire)) {
    ec = Errc::channel_shut_down;
    return nullptr;
  }
  auto watch = std::make_unique<Watch>(socket, fd);
  if ((ec = poller_->add(*watch))) return nullptr;
  watch->next = liveWatches_;
  if (liveWatches_ != nullptr) liveWatches_->prev = watch.get();
  liveWatches_ = watch.get();
  return watch.release();
}

void ChannelCore::retireWatch(Watch* watch) noexcept {
  if (completion_ != nullptr) {
    retireRingWatch(watch);
    return;
  }
  Event* pending[2];
  {
    std::lock_guard<std::mutex> lock(watch->mutex);
    watch->retired = true;
    pending[0] = std::exchange(watch->reader, nullptr);
    pending[1] = std::exchange(watch->writer, nullptr);
  }
  bool freeNow = false;
  {
    std::lock_guard<std::mutex> lock(watchesMutex_);
    if (poller_) poller_->remove(*watch);
    // Unlink from the live list; keep it until no poll can report it.
    if (watch->prev != nullptr) watch->prev->next = watch->next; else liveWatches_ = watch->next;
    if (watch->next != nullptr) watch->next->prev = watch->prev;
    if (poller_) {
      watch->prev = nullptr;
      watch->next = retiredWatches_;
      retiredWatches_ = watch;
    } else {
      freeNow = true;  // shut down: no poll is left to report it
    }
  }
  if (freeNow) delete watch;
  for (Event* event : pending) {
    if (event != nullptr) complete(*event, std::make_error_code(std::errc::operation_canceled));
  }
}

void ChannelCore::freeRetiredWatches() noexcept {
  Watch* list;
  {
    std::lock_guard<std::mutex> lock(watchesMutex_);
    list = std::exchange(retiredWatches_, nullptr);
  }
  while (list != nullptr) {
    Watch* next = list->next;
    bool inRing = false;
    if (completion_ != nullptr) {
      std::lock_guard<std::mutex> lock(list->mutex);
      inRing = list->ringOps > 0;
    }
    if (inRing) {
      // Its operations' completions will still name it.
      std::lock_guard<std::mutex> lock(watchesMutex_);
      list->next = retiredWatches_;
      retiredWatches_ = list;
    } else {
      delete list;
    }
    list = next;
  }
}

void ChannelCore::shutdown() noexcept {
  bool first = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stopping_) {
      stopping_ = true;
      shutDown_.store(true, std::memory_order_release);
      first = true;
    }
  }
  // Only the first caller sweeps: the sweep uses the poller without
  // watchesMutex_, which is safe only while the workers, which cannot
  // leave before it is done, keep the poller from being deleted.  Later
  // callers go straight to waiting for the workers.
  if (first) {
    // Listed before the sweep hands anything back: from now on an event
    // it holds for getEvent() may be destroyed (see forgetHeldEvent()).
    {
      ShutDownChannels& registry = shutDownChannels();
      std::lock_guard<std::mutex> lock(registry.mutex);
      registry.channels.push_back(this);
    }
    sweepForShutdown();
  }
  if (currentWorkerChannel() == this) return;  // a worker cannot join itself; the last one closes up

  // One caller at a time joins the pool and deletes the poller; the next
  // finds nothing left to do.
  std::lock_guard<std::mutex> closing(closingMutex_);
  std::vector<std::thread> workers;
  for (;;) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (workersGone_.wait_for(lock, std::chrono::milliseconds(100), [&] { return threads_ == 0; })) {
      workers.swap(workers_);
      break;
    }
    lock.unlock();
    // The poller may have missed the wake-up: Wine's WSAPoll, under APR's
    // pollset, was seen sleeping on through it.  Another costs nothing.
    std::lock_guard<std::mutex> watches(watchesMutex_);
    if (poller_) poller_->wakeup();
  }
  for (std::thread& worker : workers) {
    // The last reference may be dropped by an exiting worker itself.
    if (worker.get_id() == std::this_thread::get_id()) worker.detach(); else if (worker.joinable()) worker.join();
  }
  closeReadyQueue();
  std::lock_guard<std::mutex> lock(watchesMutex_);
  poller_.reset();  // closes the backend's descriptors
}

void ChannelCore::sweepForShutdown() noexcept {
  monitor_.stop();  // no spare threads during a shutdown anyway
  // Cancel what is parked on sockets and timers.
  std::vector<Event*> cancelled;
  {
    std::lock_guard<std::mutex> lock(watchesMutex_);
    for (Watch* watch = liveWatches_; watch != nullptr; watch = watch->next) {
      std::lock_guard<std::mutex> watchLock(watch->mutex);
      if (completion_ != nullptr && poller_) {
        // Completed with operation_canceled by the kernel's completions,
        // which the workers keep polling for before they exit.
        if (watch->reader != nullptr) completion_->cancel(*watch, kReadable);
        if (watch->writer != nullptr) completion_->cancel(*watch, kWritable);
        continue;
      }
      for (Event** slot : {&watch->reader, &watch->writer}) {
        if (*slot != nullptr) cancelled.push_back(std::exchange(*slot, nullptr));
      }
      if (poller_ && !poller_->edgeTriggered()) poller_->setInterest(*watch, 0);
    }
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    timers_.takeAllLocked(cancelled);
  }
  for (Event* event : cancelled) {
    if (event->kind() == Event::Kind::Connect) EventAccess::connected(static_cast<ConnectEvent&>(*event)).close();
    complete(*event, std::make_error_code(std::errc::operation_canceled));
  }
  // File IO the backend performs comes back (cancelled where it had not
  // started) while the workers are still there to deliver it.
  if (poller_) poller_->drainFileOperations();
  releaseWaiters();

  // Wake everyone: idle workers, the poller, getEvent() callers.  Only now
  // may workers leave: the cancelled events above are queued, and a task
  // they resume runs on a worker, never on the thread that cancelled it.
  {
    std::lock_guard<std::mutex> lock(mutex_);
    swept_ = true;
    workAvailable_.notify_all();
  }
  std::lock_guard<std::mutex> lock(watchesMutex_);
  if (poller_) poller_->wakeup();
}

bool ChannelCore::isShutDown() const noexcept { return shutDown_.load(std::memory_order_acquire); }

}  // namespace evchan::detail
