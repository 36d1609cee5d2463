// SPDX-License-Identifier: Apache-2.0
// SignalSet: the public face of a host's SignalSource.
#include <evchan/signal_set.h>

#include <evchan/error.h>
#include <evchan/system_error.h>

#include "apr/signal_source.h"
#include "poller/deadline.h"

namespace evchan {

namespace {

// Marks the one wait in progress on a source, and clears it again.
class WaitClaim {
 public:
  explicit WaitClaim(detail::SignalSource& source) noexcept
      : source_(source), claimed_(!source.waiting.exchange(true, std::memory_order_acquire)) {}
  ~WaitClaim() {
    if (claimed_) source_.waiting.store(false, std::memory_order_release);
  }
  WaitClaim(const WaitClaim&) = delete;
  WaitClaim& operator=(const WaitClaim&) = delete;
  bool claimed() const noexcept { return claimed_; }

 private:
  detail::SignalSource& source_;
  const bool claimed_;
};

}  // namespace

SignalSet::SignalSet(std::initializer_list<int> signals) {
  std::error_code ec;
  source_ = detail::openSignalSource(signals.begin(), signals.size(), ec);
  throwIfError(ec, "catch signals");
}

SignalSet::~SignalSet() = default;
SignalSet::SignalSet(SignalSet&& other) noexcept = default;
SignalSet& SignalSet::operator=(SignalSet&& other) noexcept = default;

int SignalSet::wait(std::error_code& ec) noexcept { return waitFor(kInfiniteTimeout, ec); }

int SignalSet::wait() {
  std::error_code ec;
  const int signal = wait(ec);
  throwIfError(ec, "wait for signal");
  return signal;
}

int SignalSet::waitFor(Duration timeout, std::error_code& ec) noexcept {
  ec.clear();
  // A set inherited across fork() is the parent's: refused, rather than
  // let the child read (and the parent lose) the parent's signals.
  if (!source_ || source_->inheritedByFork()) {
    ec = Errc::not_open;
    return 0;
  }
  if (timeout < Duration::zero()) {
    ec = Errc::negative_timeout;
    return 0;
  }
  WaitClaim claim(*source_);
  if (!claim.claimed()) {
    ec = std::make_error_code(std::errc::device_or_resource_busy);
    return 0;
  }
  const detail::Deadline own = detail::deadlineAfter(timeout);
  const int signal = source_->next(timeout, ec);
  // Its own timeout passing is an answer (no signal came); a timed_out
  // before it is the task's DeadlineScope, an error like any wait's.
  if (ec == std::errc::timed_out && detail::Clock::now() >= own) ec.clear();
  return ec ? 0 : signal;
}

int SignalSet::waitFor(Duration timeout) {
  std::error_code ec;
  const int signal = waitFor(timeout, ec);
  throwIfError(ec, "wait for signal");
  return signal;
}

int waitForSignal(std::initializer_list<int> signals) { return SignalSet(signals).wait(); }

}  // namespace evchan
