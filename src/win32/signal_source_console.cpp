// SPDX-License-Identifier: Apache-2.0
// SignalSource on Windows: the console control handler.  Ctrl+C is
// SIGINT; Ctrl+Break, closing the console, logoff and shutdown are SIGTERM.
// Windows runs the handler on a thread of its own, so a mutex and a
// condition variable are all the signalling needed.
#include "apr/signal_source.h"

#include <windows.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <mutex>
#include <vector>

#include "poller/deadline.h"

namespace evchan::detail {
namespace {

class ConsoleSignalSource;

std::mutex registryLock;
std::condition_variable registryEmptied;
std::vector<ConsoleSignalSource*> sources;

// Windows ends the process when the handler of a close, logoff or
// shutdown event returns (and after some 5 s regardless): the handler
// waits this long for the program to stop on its own first.
constexpr std::chrono::milliseconds kCloseGrace(4500);

class ConsoleSignalSource final : public SignalSource {
 public:
  ConsoleSignalSource(bool interrupt, bool terminate) noexcept : interrupt_(interrupt), terminate_(terminate) {}
  ~ConsoleSignalSource() override;

  // Queues `signal` if this source catches it.  Called under registryLock.
  bool deliver(int signal) {
    if ((signal == SIGINT && !interrupt_) || (signal == SIGTERM && !terminate_)) return false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      pending_.push_back(signal);
    }
    arrived_.notify_all();
    return true;
  }

  int next(Duration timeout, std::error_code& ec) noexcept override {
    std::unique_lock<std::mutex> lock(mutex_);
    const auto ready = [this] { return !pending_.empty(); };
    const Deadline deadline = deadlineAfter(timeout);  // saturates: no overflow
    if (deadline == kNoDeadline) {
      arrived_.wait(lock, ready);
    } else if (!arrived_.wait_until(lock, deadline, ready)) {
      ec = std::make_error_code(std::errc::timed_out);
      return 0;
    }
    const int signal = pending_.front();
    pending_.pop_front();
    return signal;
  }

 private:
  const bool interrupt_;
  const bool terminate_;
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::deque<int> pending_;
};

BOOL WINAPI onConsoleEvent(DWORD type) {
  int signal = 0;
  switch (type) {
    case CTRL_C_EVENT: signal = SIGINT; break;
    case CTRL_BREAK_EVENT:
    case CTRL_CLOSE_EVENT:
    case CTRL_LOGOFF_EVENT:
    case CTRL_SHUTDOWN_EVENT: signal = SIGTERM; break;
    default: return FALSE;
  }
  std::unique_lock<std::mutex> lock(registryLock);
  bool taken = false;
  for (ConsoleSignalSource* source : sources) taken = source->deliver(signal) || taken;
  if (taken && type != CTRL_C_EVENT && type != CTRL_BREAK_EVENT)
    registryEmptied.wait_for(lock, kCloseGrace, [] { return sources.empty(); });
  return taken ? TRUE : FALSE;  // FALSE: the next handler (the default ends the process)
}

ConsoleSignalSource::~ConsoleSignalSource() {
  std::lock_guard<std::mutex> lock(registryLock);
  sources.erase(std::remove(sources.begin(), sources.end(), this), sources.end());
  if (sources.empty()) {
    SetConsoleCtrlHandler(onConsoleEvent, FALSE);
    registryEmptied.notify_all();
  }
}

}  // namespace

std::unique_ptr<SignalSource> openSignalSource(const int* signals, std::size_t count, std::error_code& ec) noexcept {
  bool interrupt = false;
  bool terminate = false;
  for (std::size_t i = 0; i < count; ++i) {
    if (signals[i] == SIGINT) {
      interrupt = true;
    } else if (signals[i] == SIGTERM) {
      terminate = true;
    } else {
      ec = std::make_error_code(std::errc::invalid_argument);
      return nullptr;
    }
  }
  if (!interrupt && !terminate) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return nullptr;
  }
  std::unique_ptr<ConsoleSignalSource> source;
  try {
    source = std::make_unique<ConsoleSignalSource>(interrupt, terminate);
    std::lock_guard<std::mutex> lock(registryLock);
    if (!sources.empty() || SetConsoleCtrlHandler(onConsoleEvent, TRUE)) {
      sources.push_back(source.get());
      return source;
    }
    ec = std::error_code(static_cast<int>(GetLastError()), std::system_category());
  } catch (const std::exception&) {  // bad_alloc, or a mutex that cannot lock
    ec = std::make_error_code(std::errc::not_enough_memory);
  }
  return nullptr;  // `source`, never registered, goes with the lock released
}

}  // namespace evchan::detail
