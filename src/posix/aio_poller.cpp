// SPDX-License-Identifier: Apache-2.0
// The POSIX aio backend: file events are aio_read/aio_write requests whose
// completions a reaper thread collects with aio_suspend() and hands to the
// channel; sockets are watched by the poll(2) backend, which it wraps.
//
// Why sockets do not go through aio: glibc runs each aio request on a
// helper thread with a plain read()/write().  On evchan's non-blocking
// sockets that completes at once with EAGAIN, and with blocking sockets
// every idle connection would hold a helper thread (glibc also serialises
// the requests of one descriptor, so a pending read would hold back the
// writes of its socket).  Files are what POSIX aio serves.
//
// No busy polling: the reaper sleeps in aio_suspend() on every request in
// flight plus a "doorbell", an aio_read from a pipe.  A new submission
// writes a byte into the pipe, which completes the doorbell and wakes the
// reaper to add the new request to its list.  The doorbell holds one of
// glibc's helper threads (20 at most by default) for as long as it waits,
// so one reaper serves every aio channel of the process: it starts with
// the first and stops with the last.
#include <aio.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <evchan/error.h>

#include "apr/file_state.h"
#include "apr/fork_hooks.h"
#include "poller/event_access.h"
#include "poller/poller.h"

namespace evchan::detail {
namespace {

// One file event in flight: its control block, where it goes back, and
// the channel's poller that submitted it (for that channel's drain).
struct Operation {
  aiocb control{};
  Event* event = nullptr;
  CompletionSink* sink = nullptr;
  const void* owner = nullptr;
};

class AioReaper;

// The process's reaper while an aio channel holds it, and the process that
// started the first one.  The lock is free across a fork (holdAcrossFork()).
//
// A child made by fork() from a process that has used aio gets no aio
// channel (function_not_supported): it inherits the C library's aio state
// but not the helper threads that serve the requests, which stayed in the
// parent.  glibc counts those that idle after serving one as ready for the
// next, so the child's first request would wait for ever for a thread
// that does not exist.  Its other backends are unaffected.
struct CurrentReaper {
  std::mutex mutex;
  std::weak_ptr<AioReaper> reaper;
  pid_t process = 0;
};

CurrentReaper& currentReaper();
void lockCurrentReaper() { currentReaper().mutex.lock(); }
void unlockCurrentReaper() { currentReaper().mutex.unlock(); }

CurrentReaper& currentReaper() {
  static CurrentReaper* const current = [] {
    auto* created = new CurrentReaper;  // immortal: a channel may outlive static destruction
    holdAcrossFork(&lockCurrentReaper, &unlockCurrentReaper);
    return created;
  }();
  return *current;
}

class AioReaper {
 public:
  // The process's reaper, started if no channel of this process holds it.
  static std::shared_ptr<AioReaper> acquire(std::error_code& ec) {
    CurrentReaper& current = currentReaper();
    std::lock_guard<std::mutex> lock(current.mutex);
    const pid_t self = ::getpid();
    if (current.process != 0 && current.process != self) {
      ec = std::make_error_code(std::errc::function_not_supported);  // forked after aio was used
      return nullptr;
    }
    if (std::shared_ptr<AioReaper> reaper = current.reaper.lock()) return reaper;
    // Before open(), which makes the first aio request: even if open()
    // fails after that, the C library's aio state is one a child cannot use.
    current.process = self;
    auto reaper = std::make_shared<AioReaper>();
    if ((ec = reaper->open())) return nullptr;
    current.reaper = reaper;
    return reaper;
  }

  ~AioReaper() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    ringDoorbell();
    if (reaper_.joinable()) {
      reaper_.join();  // it returns once the doorbell has come back
    } else if (doorbellArmed_) {
      // No reaper ever ran (open() failed): the doorbell's request must
      // finish before its control block goes away.
      const aiocb* list[] = {&doorbellControl_};
      while (::aio_error(&doorbellControl_) == EINPROGRESS) ::aio_suspend(list, 1, nullptr);
      ::aio_return(&doorbellControl_);
    }
    for (int fd : doorbell_) {
      if (fd >= 0) ::close(fd);
    }
  }

  std::error_code submit(Event& event, CompletionSink& sink, const void* owner) noexcept {
    std::unique_ptr<Operation> operation(new (std::nothrow) Operation);
    if (!operation) return std::make_error_code(std::errc::not_enough_memory);
    aiocb& control = operation->control;
    const bool read = event.kind() == Event::Kind::FileRead;
    const FileState* file = nullptr;
    std::uint64_t offset = 0;
    if (read) {
      auto& r = static_cast<FileReadEvent&>(event);
      file = FileAccess::state(r.file());
      offset = r.offset();
      control.aio_buf = r.buffer();
      control.aio_nbytes = r.size();
    } else {
      auto& w = static_cast<FileWriteEvent&>(event);
      file = FileAccess::state(w.file());
      offset = w.offset();
      control.aio_buf = const_cast<void*>(w.buffer());  // aio_write only reads it
      control.aio_nbytes = w.size();
    }
    if (file == nullptr) return Errc::not_open;
    if (!fileOffsetFits(offset)) return std::make_error_code(std::errc::invalid_argument);
    if (read) control.aio_nbytes = readableBelowOffTEnd(offset, control.aio_nbytes);
    control.aio_fildes = file->native;
    control.aio_offset = static_cast<off_t>(offset);
    control.aio_sigevent.sigev_notify = SIGEV_NONE;  // the reaper collects it
    operation->event = &event;
    operation->sink = &sink;
    operation->owner = owner;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if ((read ? ::aio_read(&control) : ::aio_write(&control)) != 0) return makeAprError(errno);
      inFlight_.push_back(operation.release());
    }
    // One ring per sleep of the reaper is enough: it clears the flag before
    // it takes its next snapshot of the requests in flight.
    if (!doorbellRung_.exchange(true, std::memory_order_acq_rel)) ringDoorbell();
    return {};
  }

  // Cancels what `owner` submitted and returns once all of it is back.
  void drain(const void* owner) noexcept {
    std::unique_lock<std::mutex> lock(mutex_);
    // Those not started yet come back with ECANCELED; running ones finish.
    for (Operation* operation : inFlight_) {
      if (operation->owner == owner) ::aio_cancel(operation->control.aio_fildes, &operation->control);
    }
    drained_.wait(lock, [&] {
      return std::none_of(inFlight_.begin(), inFlight_.end(), [&](Operation* op) { return op->owner == owner; });
    });
  }

 private:
  std::error_code open() noexcept {
    if (::pipe2(doorbell_, O_CLOEXEC) != 0) return makeAprError(errno);
    // The writers never block (a full pipe already holds a wake-up); the
    // doorbell's reader, a glibc helper thread, does.
    if (::fcntl(doorbell_[1], F_SETFL, O_NONBLOCK) != 0) return makeAprError(errno);
    if (std::error_code ec = armDoorbell()) return ec;
    try {
      reaper_ = std::thread([this] { reap(); });
    } catch (const std::system_error& e) {
      return e.code();
    }
    return {};
  }

  std::error_code armDoorbell() noexcept {
    doorbellControl_ = aiocb{};
    doorbellControl_.aio_fildes = doorbell_[0];
    doorbellControl_.aio_buf = doorbellBytes_;
    doorbellControl_.aio_nbytes = sizeof doorbellBytes_;  // takes every ring queued so far
    doorbellControl_.aio_sigevent.sigev_notify = SIGEV_NONE;
    if (::aio_read(&doorbellControl_) != 0) {
      doorbellArmed_ = false;
      return makeAprError(errno);
    }
    doorbellArmed_ = true;
    return {};
  }

  void ringDoorbell() noexcept {
    const char byte = 1;
    ssize_t n;
    do {
      n = ::write(doorbell_[1], &byte, 1);
    } while (n < 0 && errno == EINTR);
  }

  void reap() noexcept {
    std::vector<Operation*> watched;
    std::vector<const aiocb*> list;
    std::vector<std::pair<Operation*, std::error_code>> finished;
    for (;;) {
      doorbellRung_.store(false, std::memory_order_release);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        watched = inFlight_;
      }
      list.clear();
      list.push_back(&doorbellControl_);
      for (Operation* operation : watched) list.push_back(&operation->control);
      if (::aio_suspend(list.data(), static_cast<int>(list.size()), nullptr) != 0 && errno != EINTR &&
          errno != EAGAIN) {
        continue;  // nothing else can fail with a null timeout
      }
      if (::aio_error(&doorbellControl_) != EINPROGRESS) {
        ::aio_return(&doorbellControl_);
        doorbellArmed_ = false;
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_ && inFlight_.empty()) return;
        if (armDoorbell()) {
          // Without a doorbell new requests would be noticed only when an
          // older one completes; fall back to a short sleep between checks.
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      }
      finished.clear();
      for (Operation* operation : watched) {
        const int error = ::aio_error(&operation->control);
        if (error == EINPROGRESS) continue;
        const ssize_t result = ::aio_return(&operation->control);
        std::error_code ec;
        if (error == ECANCELED) {
          ec = std::make_error_code(std::errc::operation_canceled);
        } else if (error != 0) {
          ec = makeAprError(error);
        } else {
          setTransferred(*operation->event, static_cast<std::size_t>(result));
        }
        finished.emplace_back(operation, ec);
      }
      if (finished.empty()) continue;
      // Handed back before they leave inFlight_: drain() may not return
      // (and the channel let its workers go) while one is on its way.
      for (auto& done : finished) done.first->sink->operationCompleted(*done.first->event, done.second);
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& done : finished) {
        inFlight_.erase(std::find(inFlight_.begin(), inFlight_.end(), done.first));
        delete done.first;
      }
      drained_.notify_all();
    }
  }

  static void setTransferred(Event& event, std::size_t bytes) noexcept {
    if (event.kind() == Event::Kind::FileRead) {
      EventAccess::transferred(static_cast<FileReadEvent&>(event)) = bytes;
    } else {
      EventAccess::transferred(static_cast<FileWriteEvent&>(event)) = bytes;
    }
  }

  int doorbell_[2] = {-1, -1};
  aiocb doorbellControl_{};
  char doorbellBytes_[64] = {};
  bool doorbellArmed_ = false;  // the reaper's (open() and the destructor's when there is none)
  std::atomic<bool> doorbellRung_{false};
  std::thread reaper_;
  std::mutex mutex_;
  std::condition_variable drained_;
  std::vector<Operation*> inFlight_;
  bool stopping_ = false;
};

class AioPoller final : public Poller {
 public:
  AioPoller(std::unique_ptr<Poller> sockets, std::shared_ptr<AioReaper> reaper) noexcept
      : sockets_(std::move(sockets)), reaper_(std::move(reaper)) {}
  ~AioPoller() override { reaper_->drain(this); }

  Backend kind() const noexcept override { return Backend::Aio; }
  bool edgeTriggered() const noexcept override { return sockets_->edgeTriggered(); }
  std::error_code add(Watch& watch) noexcept override { return sockets_->add(watch); }
  std::error_code setInterest(Watch& watch, unsigned interest) noexcept override {
    return sockets_->setInterest(watch, interest);
  }
  void remove(Watch& watch) noexcept override { sockets_->remove(watch); }
  std::error_code wait(std::vector<Readiness>& ready, Deadline deadline) noexcept override {
    return sockets_->wait(ready, deadline);
  }
  void wakeup() noexcept override { sockets_->wakeup(); }

  bool completesFileOperations() const noexcept override { return true; }
  std::error_code submitFile(Event& event, CompletionSink& sink) noexcept override {
    return reaper_->submit(event, sink, this);
  }
  void drainFileOperations() noexcept override { reaper_->drain(this); }

 private:
  std::unique_ptr<Poller> sockets_;
  std::shared_ptr<AioReaper> reaper_;
};

}  // namespace

std::unique_ptr<Poller> createAioPoller(std::error_code& ec) {
  std::unique_ptr<Poller> sockets = createPollPoller(ec);
  if (!sockets) return nullptr;
  std::shared_ptr<AioReaper> reaper = AioReaper::acquire(ec);
  if (!reaper) return nullptr;
  return std::make_unique<AioPoller>(std::move(sockets), std::move(reaper));
}

}  // namespace evchan::detail
