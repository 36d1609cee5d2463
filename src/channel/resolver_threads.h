// SPDX-License-Identifier: Apache-2.0
// Internal: the threads on which a channel's ResolveEvents wait for the
// system resolver, so that no worker ever does.
#ifndef EVCHAN_SRC_CHANNEL_RESOLVER_THREADS_H
#define EVCHAN_SRC_CHANNEL_RESOLVER_THREADS_H

#include <atomic>
#include <memory>
#include <system_error>
#include <vector>

#include <evchan/resolve_event.h>

#include "poller/poller.h"  // CompletionSink

namespace evchan::detail {

/// Up to kMaxThreads threads, started when lookups wait and ending when
/// none does (or kMaxThreads others run), each running one lookup at a
/// time and handing the event back through the sink (the channel's
/// complete()).  More lookups queue.
///
/// A lookup cannot be interrupted, so the threads are detached and share
/// their state with this object: cancel() and close() take the event out
/// at once, and the thread that finishes that lookup later drops its
/// answer without touching the event or the sink.  The sink is called
/// with the threads' lock held (it only queues the event), which is how
/// close() knows no call is under way once it returns: in the channel's
/// lock order that lock comes before the channel's mutex_ and the
/// ReadyQueue's mutex.  All members are thread-safe.
class ResolverThreads {
 public:
  static constexpr int kMaxThreads = 4;
  /// Threads still finishing cancelled lookups, beyond kMaxThreads.
  static constexpr int kMaxAbandoned = 64;

  explicit ResolverThreads(CompletionSink& sink);
  /// Closes (as close(), dropping the events: the channel has closed it before).
  ~ResolverThreads();
  ResolverThreads(const ResolverThreads&) = delete;
  ResolverThreads& operator=(const ResolverThreads&) = delete;

  /// Queues the event's lookup, starting a thread if every one is busy.
  /// Errors: Errc::channel_shut_down after close();
  /// resource_unavailable_try_again when no thread can be started at all.
  std::error_code submit(ResolveEvent& event) noexcept;
  /// Takes the event back if its lookup is queued or running (the caller
  /// completes it); false when it is not here (already completing).  An
  /// event taken is counted in `underWay` under this object's lock, so
  /// that a close() coming after, which no longer finds it, can be told
  /// that the caller has yet to complete it (the caller counts it down).
  /// A running lookup's thread stays in it, so a thread is started for a
  /// lookup waiting behind it.
  bool cancel(ResolveEvent& event, std::atomic<int>& underWay) noexcept;
  /// At shutdown: appends every event still here to `taken` for the caller
  /// to complete, and calls the sink never again.
  void close(std::vector<Event*>& taken) noexcept;

 private:
  struct Shared;
  /// Under the lock: starts a thread if a waiting lookup has no free one
  /// and fewer than kMaxThreads live lookups run; false if that failed.
  bool startThreadIfWanted() noexcept;
  static void run(const std::shared_ptr<Shared>& shared) noexcept;

  std::shared_ptr<Shared> shared_;
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_CHANNEL_RESOLVER_THREADS_H
