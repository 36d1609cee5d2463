// SPDX-License-Identifier: Apache-2.0
// The portable apr_pollset backend (the one an APR-only build uses).
//
// Not every apr_pollset method allows changing the set while another
// thread polls it (APR_POLLSET_THREADSAFE is epoll/kqueue only), so only
// the polling thread touches the set, between waits; other threads record
// what they want and wake it.  A socket being closed waits for the poller
// to drop it, since the set keeps a pointer to the APR socket.
//
// A pollset holds a fixed number of sockets.  When a socket would not fit,
// the thread asking makes a set twice the size, and the polling thread
// moves to it between waits (select's set cannot grow past FD_SETSIZE:
// there the socket is refused).
//
// Where files can be polled (POSIX), the set's wake-up pipe is ours, made
// before the set and added to it like a socket, rather than APR's
// (APR_POLLSET_WAKEABLE): apr_pollset_create_ex makes APR's pipe after
// the epoll instance and, when the pipe fails (a process with one or two
// descriptors left), returns without closing that instance, so each
// growth tried at the descriptor limit leaked one.  Ours also never
// blocks its writer (APR's write end does, on a full pipe, under our lock).
#include <apr_file_io.h>
#include <apr_poll.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <evchan/error.h>

#include "apr/apr_runtime.h"
#include "apr/pollset_sleep_bound.h"
#include "poller/poller.h"

namespace evchan::detail {
namespace {

class AprPollsetPoller final : public Poller {
 public:
  std::error_code open() noexcept {
    if (std::error_code ec = createSet(kInitialCapacity, current_)) return ec;
    fixedCapacity_ = std::strcmp(apr_pollset_method_name(current_.set), "select") == 0;
    return {};
  }

  Backend kind() const noexcept override { return Backend::AprPollset; }
  bool edgeTriggered() const noexcept override { return false; }
  std::error_code add(Watch&) noexcept override { return {}; }

  std::error_code setInterest(Watch& watch, unsigned interest) noexcept override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (interest == 0) {
      desired_.erase(&watch);
    } else {
      if (desired_.count(&watch) == 0) {
        if (std::error_code ec = reserveLocked(desired_.size() + 1)) return ec;
      }
      desired_[&watch] = interest;
    }
    touched_.insert(&watch);
    changed_ = true;
    if (waiting_) wake(current_);
    return {};
  }

  void remove(Watch& watch) noexcept override {
    std::unique_lock<std::mutex> lock(mutex_);
    desired_.erase(&watch);
    touched_.insert(&watch);
    changed_ = true;
    if (active_.count(&watch) == 0) return;
    if (!waiting_) {
      applyChanges();
      return;
    }
    wake(current_);
    applied_.wait(lock, [&] { return active_.count(&watch) == 0; });
  }

  std::error_code wait(std::vector<Readiness>& ready, Deadline deadline) noexcept override {
    ready.clear();
    apr_pollset_t* set = nullptr;
    apr_file_t* wakeRead = nullptr;
    bool wakeupLost = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (changed_) applyChanges();
      waiting_ = true;
      set = current_.set;  // not replaced while waiting_
      wakeRead = current_.wakeRead;
      wakeupLost = std::exchange(movedSets_, false);
    }
    // In whole milliseconds, rounded up: APR's epoll and poll pollsets
    // truncate the microseconds to milliseconds, so a wait due in 0.9 ms
    // returned at once, and the channel spun through the last millisecond
    // of every wait (and took timers due together one at a time).
    apr_interval_time_t timeoutUs = -1;
    if (deadline != kNoDeadline) timeoutUs = apr_interval_time_t(timeoutMilliseconds(deadline)) * 1000;
    // A wakeup() the old set took after its last wait went with it: this
    // wait must not sleep through it (returning at once is harmless).
    if (wakeupLost) timeoutUs = 0;
    // A host that misses wake-ups: a bounded sleep, after which the caller
    // polls again (a spurious return, as an interrupted poll is).
    static const apr_interval_time_t boundUs = pollsetSleepBound().count();
    if (boundUs > 0 && (timeoutUs < 0 || timeoutUs > boundUs)) timeoutUs = boundUs;
    apr_int32_t count = 0;
    const apr_pollfd_t* results = nullptr;
    const apr_status_t status = apr_pollset_poll(set, timeoutUs, &count, &results);
    if (status == APR_SUCCESS) {
      for (apr_int32_t i = 0; i < count; ++i) {
        if (results[i].client_data == nullptr) {  // our wake-up pipe
          if (wakeRead != nullptr) drainWakeups(wakeRead);
          continue;
        }
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

  void wakeup() noexcept override {
    std::lock_guard<std::mutex> lock(mutex_);  // the set may be replaced otherwise
    wake(current_);
  }

 private:
  static constexpr apr_uint32_t kInitialCapacity = 4096;

  /// Files can be polled: the wake-up pipe is ours (see the top).
  static constexpr bool kOwnWakePipe = APR_FILES_AS_SOCKETS != 0;

  /// A pollset and the pool it lives in (destroying the pool destroys it,
  /// and closes the wake-up pipe).
  struct Set {
    PoolPtr pool;
    apr_pollset_t* set = nullptr;
    apr_uint32_t capacity = 0;
    apr_file_t* wakeRead = nullptr;  ///< our wake-up pipe; null: APR's
    apr_file_t* wakeWrite = nullptr;
  };

  static std::error_code createSet(apr_uint32_t capacity, Set& made) noexcept {
    std::error_code ec;
    PoolPtr pool = createPool(ec);
    if (!pool) return ec;
    // A failure below destroys the pool, which closes what was made.
    if (!kOwnWakePipe) {
      apr_pollset_t* set = nullptr;
      if ((ec = makeAprError(
               apr_pollset_create_ex(&set, capacity, pool.get(), APR_POLLSET_WAKEABLE, APR_POLLSET_DEFAULT)))) {
        return ec;
      }
      made.pool = std::move(pool);
      made.set = set;
      made.capacity = capacity;
      return {};
    }
    apr_file_t* wakeRead = nullptr;
    apr_file_t* wakeWrite = nullptr;
    if ((ec = makeAprError(apr_file_pipe_create_ex(&wakeRead, &wakeWrite, APR_FULL_NONBLOCK, pool.get()))) ||
        (ec = makeAprError(apr_file_inherit_unset(wakeRead))) ||
        (ec = makeAprError(apr_file_inherit_unset(wakeWrite)))) {
      return ec;
    }
    apr_pollset_t* set = nullptr;
    // One more place, for the pipe (as APR_POLLSET_WAKEABLE adds).  Not
    // copied: APR's epoll and kqueue sets then remove a socket without
    // searching a list of every one (a change cost a pass over them all).
    if ((ec = makeAprError(
             apr_pollset_create_ex(&set, capacity + 1, pool.get(), APR_POLLSET_NOCOPY, APR_POLLSET_DEFAULT)))) {
      return ec;
    }
    auto* pfd = static_cast<apr_pollfd_t*>(apr_pcalloc(pool.get(), sizeof(apr_pollfd_t)));  // lives with the set
    pfd->p = pool.get();
    pfd->desc_type = APR_POLL_FILE;
    pfd->desc.f = wakeRead;
    pfd->reqevents = APR_POLLIN;
    pfd->client_data = nullptr;  // every socket's is its Watch
    if ((ec = makeAprError(apr_pollset_add(set, pfd)))) return ec;
    made.pool = std::move(pool);
    made.set = set;
    made.capacity = capacity;
    made.wakeRead = wakeRead;
    made.wakeWrite = wakeWrite;
    return {};
  }

  // Makes the set's current or next poll return; mutex_ held.
  static void wake(Set& set) noexcept {
    if (set.wakeWrite == nullptr) {
      apr_pollset_wakeup(set.set);
      return;
    }
    // Full (EAGAIN): a wake-up is pending already.
    apr_file_putc(1, set.wakeWrite);
  }

  // Empties our wake-up pipe (the polling thread, after a poll reported it).
  static void drainWakeups(apr_file_t* wakeRead) noexcept {
    char bytes[256];
    apr_size_t size = sizeof bytes;
    while (apr_file_read(wakeRead, bytes, &size) == APR_SUCCESS && size == sizeof bytes) size = sizeof bytes;
  }

  // Makes sure a set for `count` sockets is current or made (next_);
  // mutex_ held.
  std::error_code reserveLocked(std::size_t count) noexcept {
    if (count <= current_.capacity || (next_.set != nullptr && count <= next_.capacity)) return {};
    if (fixedCapacity_) return Errc::descriptor_too_large;  // select: FD_SETSIZE
    const std::size_t largest = next_.set != nullptr ? next_.capacity : current_.capacity;
    const std::size_t wanted = std::max(2 * largest, count);
    if (wanted > 0x7fffffff) return Errc::descriptor_too_large;
    Set larger;
    if (std::error_code ec = createSet(static_cast<apr_uint32_t>(wanted), larger)) return ec;
    next_ = std::move(larger);
    return {};
  }

  static apr_pollfd_t descriptor(Watch* watch, unsigned interest) {
    apr_pollfd_t pfd{};
    pfd.desc_type = APR_POLL_SOCKET;
    pfd.desc.s = watch->socket;
    pfd.reqevents = static_cast<apr_int16_t>(((interest & kReadable) ? APR_POLLIN : 0) |
                                             ((interest & kWritable) ? APR_POLLOUT : 0));
    pfd.client_data = watch;
    return pfd;
  }

  // Brings the pollset in line with desired_, moving to next_ if made;
  // mutex_ held, not waiting.
  void applyChanges() noexcept {
    if (next_.set != nullptr) {
      current_ = std::move(next_);  // destroys the old set: nothing waits on it
      next_ = Set{};
      active_.clear();
      touched_.clear();
      movedSets_ = true;
      for (const auto& [watch, interest] : desired_) {
        if (!addActive(watch, interest)) touched_.insert(watch);
      }
      changed_ = false;
      return;
    }
    // Only the sockets whose interest changed, not every one watched: a
    // set may hold tens of thousands, and this runs after every wait that
    // anything changed in.  Removals first (a poll set has no room to spare).
    for (Watch* watch : touched_) {
      auto active = active_.find(watch);
      if (active == active_.end()) continue;
      auto wanted = desired_.find(watch);
      if (wanted != desired_.end() && wanted->second == active->second.interest) continue;
      apr_pollset_remove(current_.set, &active->second.pfd);
      active_.erase(active);
    }
    for (auto it = touched_.begin(); it != touched_.end();) {
      auto wanted = desired_.find(*it);
      if (wanted == desired_.end() || active_.count(*it) != 0 || addActive(*it, wanted->second)) {
        it = touched_.erase(it);
      } else {
        ++it;  // tried again at the next change, as a full pass would
      }
    }
    changed_ = false;
  }

  // Adds `watch` to the current set; false when the set refuses it.
  // mutex_ held.
  bool addActive(Watch* watch, unsigned interest) noexcept {
    // The set keeps a pointer to the descriptor (APR_POLLSET_NOCOPY): it
    // lives in active_'s node, which no rehash moves, until removed.
    const auto added = active_.try_emplace(watch, Active{interest, descriptor(watch, interest)}).first;
    // setInterest() keeps desired_ within the capacity, so this succeeds
    // unless the socket is already closed, which the channel then reports.
    if (apr_pollset_add(current_.set, &added->second.pfd) == APR_SUCCESS) return true;
    active_.erase(added);
    return false;
  }

  Set current_;
  Set next_;
  bool fixedCapacity_ = false;
  bool movedSets_ = false;  // since the last wait
  std::mutex mutex_;
  std::condition_variable applied_;
  std::unordered_map<Watch*, unsigned> desired_;
  /// A socket in the current set: the directions watched, and the
  /// descriptor the set points to.
  struct Active {
    unsigned interest;
    apr_pollfd_t pfd;
  };
  std::unordered_map<Watch*, Active> active_;
  std::unordered_set<Watch*> touched_;  ///< whose desired_ entry changed since the last applyChanges()
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
