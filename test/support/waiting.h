// SPDX-License-Identifier: Apache-2.0
// Bounded waiting for the suites: a failing test reports, it never hangs.
// Every patience here detects a hang and is stretched by slowdown().
#ifndef EVCHAN_TEST_SUPPORT_WAITING_H
#define EVCHAN_TEST_SUPPORT_WAITING_H

#include <cppunit/extensions/HelperMacros.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include <evchan/event_channel.h>
#include <evchan/task.h>

#include "support/skip.h"
#include "support/slowdown.h"

namespace evchan::test {

inline constexpr Duration kDefaultPatience = std::chrono::seconds(8);

/// Polls `condition` every millisecond until it holds or `patience`
/// (times slowdown()) passes.
inline bool eventually(const std::function<bool()>& condition, Duration patience = kDefaultPatience) {
  const auto deadline = std::chrono::steady_clock::now() + generous(patience);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

/// join() from a plain thread, but never waiting longer than `patience`:
/// a task that does not end fails the test.
inline void joinWithin(TaskHandle& task, Duration patience = kDefaultPatience) {
  CPPUNIT_ASSERT_MESSAGE("task " + std::to_string(task.id()) + " did not end in time",
                         eventually([&] { return task.done(); }, patience));
  task.join();
}

/// Waits until every worker of `channel` is idle, and true when they are.
/// Once a task is known to have started (it set a flag), this means that it
/// has parked in its wait or ended: a worker that switched a task out is
/// idle only after the wait is registered.  Without such a flag it proves
/// nothing, since a task just spawned may not have woken a worker yet.
inline bool allWorkersIdle(EventChannel& channel, Duration patience = kDefaultPatience) {
  return eventually(
      [&] {
        const ThreadPoolStats stats = channel.poolStats();
        return stats.idle == stats.current;
      },
      patience);
}

/// Runs `call` on another thread; if it has not finished within `limit`
/// (times slowdown()), runs `release` (which must unblock it) before
/// joining.  True when the call finished on its own.
template <class Call, class Release>
bool finishesWithin(Duration limit, Call call, Release release) {
  std::future<void> worker = std::async(std::launch::async, call);
  const bool finished = worker.wait_for(generous(limit)) == std::future_status::ready;
  if (!finished) release();
  worker.get();
  return finished;
}

/// Creates a channel on the default backend, which EVCHAN_BACKEND may name
/// (test/on-backend runs a suite on io_uring so): a named backend the
/// build or the kernel refuses skips the test with the reason.
inline std::unique_ptr<EventChannel> createOrSkip(const EventChannel::Options& options) {
  std::error_code ec;
  std::unique_ptr<EventChannel> channel = EventChannel::create(options, ec);
  const char* named = std::getenv("EVCHAN_BACKEND");
  if (!channel && named != nullptr && *named != '\0') {
    EVCHAN_SKIP(std::string("EVCHAN_BACKEND=") + named + " not available: " + ec.message());
  }
  CPPUNIT_ASSERT_MESSAGE("create: " + ec.message(), channel != nullptr);
  return channel;
}

/// Creates a channel on the backend `options` names: one the build or the
/// kernel refuses (not compiled in; io_uring's ENOSYS, or EPERM under
/// seccomp or kernel.io_uring_disabled) skips the test with the reason.
inline std::unique_ptr<EventChannel> createOnBackendOrSkip(const EventChannel::Options& options) {
  std::error_code ec;
  std::unique_ptr<EventChannel> channel = EventChannel::create(options, ec);
  if (ec == std::errc::function_not_supported || ec == std::errc::operation_not_permitted ||
      ec == std::errc::permission_denied) {
    EVCHAN_SKIP(std::string("backend not available: ") + backendName(options.backend) + ": " + ec.message());
  }
  CPPUNIT_ASSERT_MESSAGE("create: " + ec.message(), channel != nullptr && !ec);
  return channel;
}

/// Why file events (FileReadEvent, FileWriteEvent, File calls in a task)
/// cannot be tested on `backend` in this build, or null.  Under
/// ThreadSanitizer, aio: glibc's aio helper threads start further helpers
/// with its internal pthread_create, behind TSan's interceptors, and TSan
/// crashes in its own allocator in such a thread (gdb: a null allocator
/// cache under handle_fildes_io, pthread_create, allocate_dtv, calloc).
/// Socket events on aio keep only the doorbell's helper, started from a
/// thread TSan knows, and still run there.
inline const char* fileEventsUntestable(Backend backend) {
#if defined(EVCHAN_TEST_TSAN)
  if (backend == Backend::Aio) return "aio under ThreadSanitizer: glibc starts its aio helper threads unseen by TSan";
#else
  (void)backend;
#endif
  return nullptr;
}

/// The same for a channel on `backend` with `initialThreads` workers.
inline std::unique_ptr<EventChannel> createOnBackendOrSkip(Backend backend, int initialThreads) {
  EventChannel::Options options;
  options.backend = backend;
  options.initialThreads = initialThreads;
  return createOnBackendOrSkip(options);
}

/// A channel with `initialThreads` workers.
inline std::unique_ptr<EventChannel> makeChannel(int initialThreads) {
  EventChannel::Options options;
  options.initialThreads = initialThreads;
  return createOrSkip(options);
}

/// For tests that count the pool's threads to prove that a wait suspends
/// the task instead of blocking the worker: without the stuck-worker
/// monitor, which may (rightly) start a spare thread when a loaded machine
/// stretches a task slice past its grace period.
inline std::unique_ptr<EventChannel> makeChannelWithoutMonitor(int initialThreads) {
  EventChannel::Options options;
  options.initialThreads = initialThreads;
  options.stuckWorkerGrace = Duration::zero();
  return createOrSkip(options);
}

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_WAITING_H
