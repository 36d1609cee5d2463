// SPDX-License-Identifier: Apache-2.0
// The portable apr_pollset backend (the one an APR-only build uses).
//
// Not every apr_pollset method allows changing the set while another
// thread polls it (APR_POLLSET_THREADSAFE is epoll/kqueue only), so only
// the polling thread touches the set, between waits; other threads record
// what they want and wake it.  A socket being closed waits for the poller
// to drop it, since the set keeps a pointer to the APR socket.
#include <apr_poll.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <unordered_map>

#include <evchan/error.h>

#include "apr/apr_runtime.h"
#include "apr/pollset_sleep_bound.h"
#include "poller/poller.h"

namespace evchan::detail {
namespace {

class AprPollsetPoller final : public Poller {
 public:
  std::error_code open() noexcept {
    std::error_code ec;
    pool_ = createPool(ec);
    if (!pool_) return ec;
    return makeAprError(apr_pollset_create_ex(&set_, kCapacity, pool_.get(), APR_POLLSET_WAKEABLE,
                                              APR_POLLSET_DEFAULT));
  }

  Backend kind() const noexcept override { return Backend::AprPollset; }
  bool edgeTriggered() const noexcept override { return false; }
  std::error_code add(Watch&) noexcept override { return {}; }

  std::error_code setInterest(Watch& watch, unsigned interest) noexcept override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (interest == 0) {
      desired_.erase(&watch);
    } else if (desired_.count(&watch) == 0 && desired_.size() >= kCapacity) {
      return Errc::descriptor_too_large;  // the set's fixed capacity (select-based methods)
    } else {
      desired_[&watch] = interest;
    }
    changed_ = true;
    if (waiting_) apr_pollset_wakeup(set_);
    return {};
  }

  void remove(Watch& watch) noexcept override {
    std::unique_lock<std::mutex> lock(mutex_);
    desired_.erase(&watch);
    changed_ = true;
    if (active_.count(&watch) == 0) return;
    if (!waiting_) {
      applyChanges();
      return;
    }
    apr_pollset_wakeup(set_);
    applied_.wait(lock, [&] { return active_.count(&watch) == 0; });
  }

  std::error_code wait(std::vector<Readiness>& ready, Deadline deadline) noexcept override {
    ready.clear();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (changed_) applyChanges();
      waiting_ = true;
    }
    // In whole milliseconds, rounded up: APR's epoll and poll pollsets
    // truncate the microseconds to milliseconds, so a wait due in 0.9 ms
    // returned at once, and the channel spun through the last millisecond
    // of every wait (and took timers due together one at a time).
    apr_interval_time_t timeoutUs = -1;
    if (deadline != kNoDeadline) timeoutUs = apr_interval_time_t(timeoutMilliseconds(deadline)) * 1000;
    // A host that misses wake-ups: a bounded sleep, after which the caller
    // polls again (a spurious return, as an interrupted poll is).
    static const apr_interval_time_t boundUs = pollsetSleepBound().count();
    if (boundUs > 0 && (timeoutUs < 0 || timeoutUs > boundUs)) timeoutUs = boundUs;
    apr_int32_t count = 0;
    const apr_pollfd_t* results = nullptr;
    const apr_status_t status = apr_pollset_poll(set_, timeoutUs, &count, &results);
    if (status == APR_SUCCESS) {
      for (apr_int32_t i = 0; i < count; ++i) {
        const apr_int16_t got = results[i].rtnevents;
        const bool failed = (got & (APR_POLLERR | APR_POLLHUP | APR_POLLNVAL)) != 0;
        unsigned flags = 0;
        if (failed || (got & APR_POLLIN)) flags |= kReadable;
        if (failed || (got & APR_POLLOUT)) flags |= kWritable;
        ready.push_back(Readiness{static_cast<Watch*>(results[i].client_data), flags});
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    waiting_ = false;
    if (changed_) applyChanges();
    applied_.notify_all();
    if (status == APR_SUCCESS || APR_STATUS_IS_TIMEUP(status) || APR_STATUS_IS_EINTR(status)) return {};
    return makeAprError(status);
  }

  void wakeup() noexcept override { apr_pollset_wakeup(set_); }

 private:
  static constexpr apr_uint32_t kCapacity = 4096;

  static apr_pollfd_t descriptor(Watch* watch, unsigned interest) {
    apr_pollfd_t pfd{};
    pfd.desc_type = APR_POLL_SOCKET;
    pfd.desc.s = watch->socket;
    pfd.reqevents = static_cast<apr_int16_t>(((interest & kReadable) ? APR_POLLIN : 0) |
                                             ((interest & kWritable) ? APR_POLLOUT : 0));
    pfd.client_data = watch;
    return pfd;
  }

  // Brings the pollset in line with desired_; mutex_ held, not waiting.
  void applyChanges() noexcept {
    for (auto it = active_.begin(); it != active_.end();) {
      auto wanted = desired_.find(it->first);
      if (wanted != desired_.end() && wanted->second == it->second) {
        ++it;
        continue;
      }
      apr_pollfd_t pfd = descriptor(it->first, it->second);
      apr_pollset_remove(set_, &pfd);
      it = active_.erase(it);
    }
    for (const auto& [watch, interest] : desired_) {
      if (active_.count(watch) != 0) continue;
      apr_pollfd_t pfd = descriptor(watch, interest);
      // setInterest() keeps desired_ within the capacity, so this succeeds
      // unless the socket is already closed, which the channel then reports.
      if (apr_pollset_add(set_, &pfd) == APR_SUCCESS) active_[watch] = interest;
    }
    changed_ = false;
  }

  PoolPtr pool_;
  apr_pollset_t* set_ = nullptr;
  std::mutex mutex_;
  std::condition_variable applied_;
  std::unordered_map<Watch*, unsigned> desired_;
  std::unordered_map<Watch*, unsigned> active_;
  bool waiting_ = false;
  bool changed_ = false;
};

}  // namespace

std::unique_ptr<Poller> createAprPollsetPoller(std::error_code& ec) {
  auto poller = std::make_unique<AprPollsetPoller>();
  if ((ec = poller->open())) return nullptr;
  return poller;
}

}  // namespace evchan::detail
