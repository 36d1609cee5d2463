// SPDX-License-Identifier: Apache-2.0
// Internal: how a SignalSet receives its signals on each host.
#ifndef EVCHAN_SRC_APR_SIGNAL_SOURCE_H
#define EVCHAN_SRC_APR_SIGNAL_SOURCE_H

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <system_error>

#include <evchan/duration.h>

#include "apr/fork_hooks.h"

namespace evchan::detail {

/// The signals one SignalSet catches, queued in arrival order.  Defined
/// per host: src/posix/signal_source_pipe.cpp (a handler writing to a
/// socket pair), src/win32/signal_source_console.cpp (the console control
/// handler).
class SignalSource {
 public:
  virtual ~SignalSource() = default;
  /// Takes the next signal, waiting at most `timeout` for it (suspending
  /// the task inside a task, blocking the thread outside one).  0 with
  /// `ec` set on failure; std::errc::timed_out when the timeout passes.
  virtual int next(Duration timeout, std::error_code& ec) noexcept = 0;

  /// Set by the one wait in progress (SignalSet's rule: one at a time).
  std::atomic<bool> waiting{false};

  /// True in a child forked since the source was made: its socket pair
  /// is the parent's too, so a wait there would take the parent's signals.
  bool inheritedByFork() const noexcept { return madeInGeneration_ != forkGeneration(); }

 private:
  const std::uint64_t madeInGeneration_ = forkGeneration();
};

/// Starts catching `signals[0..count)`: null with `ec` set for a signal
/// the host cannot catch (std::errc::invalid_argument) or a failure to
/// set up (the system's error).
std::unique_ptr<SignalSource> openSignalSource(const int* signals, std::size_t count, std::error_code& ec) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_SIGNAL_SOURCE_H
