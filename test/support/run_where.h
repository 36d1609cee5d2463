// SPDX-License-Identifier: Apache-2.0
// One test body for both variants of a case, on a plain thread and in a
// task: runWhere() runs it here or in a task and waits for it;
// ThreadOrTask starts it beside the test (a writer the test then cancels
// or closes under) and join() waits for it.  An assertion that fails in
// the body fails the test with its message, wherever the body ran.
#ifndef EVCHAN_TEST_SUPPORT_RUN_WHERE_H
#define EVCHAN_TEST_SUPPORT_RUN_WHERE_H

#include <cppunit/extensions/HelperMacros.h>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include <evchan/event_channel.h>
#include <evchan/task.h>

#include "support/skip.h"
#include "support/waiting.h"

namespace evchan::test {

/// How long runWhere() on a channel of its own waits for its task (times
/// slowdown()) before it fails the test.
inline constexpr Duration kRunWherePatience = std::chrono::seconds(60);

/// Spawns `function` on `channel`, skipping the test where the build has
/// no tasks.
inline TaskHandle spawnOrSkip(EventChannel& channel, std::function<void()> function) {
  std::error_code ec;
  TaskHandle task = channel.spawn(std::move(function), {}, ec);
  if (ec == std::errc::function_not_supported) EVCHAN_SKIP("no tasks in this build");
  CPPUNIT_ASSERT_MESSAGE("spawn: " + ec.message(), !ec);
  return task;
}

/// Runs `body` from construction on: in a task of `channel`, or on a new
/// thread where `channel` is null.  join() waits for it and fails the
/// test with the message of an exception (a failed assertion) that ended
/// it.  The destructor joins a thread not yet joined, so `body` must end
/// by itself (give its sockets timeouts); a task not joined is left for
/// its channel to end.
class ThreadOrTask {
 public:
  ThreadOrTask(EventChannel* channel, std::function<void()> body) : outcome_(std::make_shared<Outcome>()) {
    // The outcome is shared: a task the test abandons may end after this
    // object is gone.
    auto run = [outcome = outcome_, body = std::move(body)] {
      try {
        body();
      } catch (const std::exception& e) {
        outcome->failed = true;
        outcome->what = e.what();
      }
    };
    if (channel != nullptr) {
      task_ = spawnOrSkip(*channel, std::move(run));
    } else {
      thread_ = std::thread(std::move(run));
    }
  }

  ThreadOrTask(const ThreadOrTask&) = delete;
  ThreadOrTask& operator=(const ThreadOrTask&) = delete;

  ~ThreadOrTask() {
    if (thread_.joinable()) thread_.join();
  }

  /// Waits for `body` to end, however long it takes.
  void join() {
    if (task_.valid()) {
      task_.join();
    } else {
      thread_.join();
    }
    CPPUNIT_ASSERT_MESSAGE(outcome_->what, !outcome_->failed);
  }

  /// The same, but a task that has not ended within `patience` (times
  /// slowdown()) fails the test; a thread is joined however long it takes.
  void join(Duration patience) {
    if (task_.valid()) {
      joinWithin(task_, patience);
    } else {
      thread_.join();
    }
    CPPUNIT_ASSERT_MESSAGE(outcome_->what, !outcome_->failed);
  }

 private:
  struct Outcome {
    bool failed = false;
    std::string what;
  };
  std::shared_ptr<Outcome> outcome_;
  TaskHandle task_;
  std::thread thread_;
};

/// Runs `body` on this thread, or (inTask) in a task of `channel` and
/// waits for it as join() does, however long it takes.
inline void runWhere(bool inTask, EventChannel& channel, const std::function<void()>& body) {
  if (!inTask) {
    body();
    return;
  }
  ThreadOrTask task(&channel, body);
  task.join();
}

/// Runs `body` on this thread, or (inTask) in a task of a one-worker
/// channel of its own, waited for at most `patience` (times slowdown());
/// skips the test where the build has no tasks.
inline void runWhere(bool inTask, const std::function<void()>& body, Duration patience = kRunWherePatience) {
  if (!inTask) {
    body();
    return;
  }
  std::unique_ptr<EventChannel> channel = makeChannel(1);
  ThreadOrTask task(channel.get(), body);
  task.join(patience);
}

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_RUN_WHERE_H
