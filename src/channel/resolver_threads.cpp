// SPDX-License-Identifier: Apache-2.0
// ResolverThreads: lookups on detached threads that may outlive the channel.
#include "channel/resolver_threads.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <mutex>
#include <new>
#include <thread>

#include <evchan/error.h>

#include "apr/host_lookup.h"
#include "poller/event_access.h"

namespace evchan::detail {

struct ResolverThreads::Shared {
  struct Job {
    ResolveEvent* event;
    std::uint64_t id;  // tells a re-posted event's new lookup from its cancelled one
  };
  std::mutex mutex;
  CompletionSink* sink;  // null once closed
  std::deque<Job> waiting;
  std::vector<Job> running;  // reserved for kMaxThreads: never allocates under the lock
  std::uint64_t lastId = 0;
  int threads = 0;
  int busy = 0;       // threads inside a lookup
  int abandoned = 0;  // of those, threads whose lookup was cancelled: they
                      // finish it (it cannot be interrupted) and drop it

  explicit Shared(CompletionSink& target) : sink(&target) { running.reserve(kMaxThreads); }

  // Takes `event` out of `jobs`; true when it was there.
  template <class Jobs>
  bool remove(Jobs& jobs, const ResolveEvent& event) {
    auto it = std::find_if(jobs.begin(), jobs.end(), [&](const Job& job) { return job.event == &event; });
    if (it == jobs.end()) return false;
    jobs.erase(it);
    return true;
  }
};

ResolverThreads::ResolverThreads(CompletionSink& sink) : shared_(std::make_shared<Shared>(sink)) {}

ResolverThreads::~ResolverThreads() {
  std::vector<Event*> dropped;
  close(dropped);
}

std::error_code ResolverThreads::submit(ResolveEvent& event) noexcept {
  Shared& shared = *shared_;
  std::lock_guard<std::mutex> lock(shared.mutex);
  if (shared.sink == nullptr) return Errc::channel_shut_down;
  try {
    shared.waiting.push_back({&event, ++shared.lastId});
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
  if (!startThreadIfWanted() && shared.threads == 0) {
    // A busy thread would take the lookup when it is done; with none, fail.
    shared.waiting.pop_back();
    return std::make_error_code(std::errc::resource_unavailable_try_again);
  }
  return {};
}

bool ResolverThreads::startThreadIfWanted() noexcept {
  Shared& shared = *shared_;
  // A thread for each lookup no thread is free for, up to kMaxThreads
  // lookups at once; threads stuck in cancelled lookups do not count
  // against that (they would hold up every lookup after them until the
  // resolver gave up), up to a bound of their own.
  const int free = shared.threads - shared.busy;
  const int active = shared.threads - shared.abandoned;
  if (static_cast<std::size_t>(free) >= shared.waiting.size() || active >= kMaxThreads ||
      shared.threads >= kMaxThreads + kMaxAbandoned) {
    return true;
  }
  try {
    std::thread([shared = shared_] { run(shared); }).detach();
    ++shared.threads;
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

bool ResolverThreads::cancel(ResolveEvent& event, std::atomic<int>& underWay) noexcept {
  Shared& shared = *shared_;
  std::lock_guard<std::mutex> lock(shared.mutex);
  if (!shared.remove(shared.waiting, event)) {
    if (!shared.remove(shared.running, event)) return false;
    ++shared.abandoned;  // its thread is still in the lookup
    // A lookup waiting behind this one starts now.  If no thread can be
    // started, the abandoned one takes it when its lookup returns.
    startThreadIfWanted();
  }
  underWay.fetch_add(1);  // sequentially consistent, as every access to it (ChannelCore::completionQueued())
  return true;
}

void ResolverThreads::close(std::vector<Event*>& taken) noexcept {
  Shared& shared = *shared_;
  std::lock_guard<std::mutex> lock(shared.mutex);
  shared.sink = nullptr;
  try {
    for (const Shared::Job& job : shared.waiting) taken.push_back(job.event);
    for (const Shared::Job& job : shared.running) taken.push_back(job.event);
  } catch (const std::bad_alloc&) {
    // Nothing can be done for them; they are dropped as the lookups are.
  }
  shared.waiting.clear();
  shared.abandoned += static_cast<int>(shared.running.size());
  shared.running.clear();
}

void ResolverThreads::run(const std::shared_ptr<Shared>& shared) noexcept {
  std::unique_lock<std::mutex> lock(shared->mutex);
  for (;;) {
    // `running` holds exactly the live lookups: with kMaxThreads of them
    // (a thread back from a cancelled lookup finds those started beside
    // it), the threads running them take what waits.
    const bool full = shared->running.size() >= static_cast<std::size_t>(kMaxThreads);
    if (shared->waiting.empty() || shared->sink == nullptr || full) {
      --shared->threads;
      return;
    }
    const Shared::Job job = shared->waiting.front();
    shared->waiting.pop_front();
    shared->running.push_back(job);
    std::error_code ec;
    std::vector<Address> found;
    try {
      // Copied: the event may be cancelled and destroyed during the lookup.
      const Endpoint endpoint = job.event->endpoint();
      const AddressFamily family = job.event->family();
      ++shared->busy;
      lock.unlock();
      found = lookUpHost(endpoint, family, ec);
    } catch (const std::bad_alloc&) {
      ec = std::make_error_code(std::errc::not_enough_memory);
    }
    if (!lock.owns_lock()) {
      lock.lock();
      --shared->busy;
    }
    auto it = std::find_if(shared->running.begin(), shared->running.end(),
                           [&](const Shared::Job& entry) { return entry.id == job.id; });
    if (it == shared->running.end()) {  // cancelled or closed meanwhile: the event is not ours
      --shared->abandoned;
      continue;
    }
    shared->running.erase(it);
    EventAccess::addresses(*job.event) = std::move(found);
    shared->sink->operationCompleted(*job.event, ec);
  }
}

}  // namespace evchan::detail
