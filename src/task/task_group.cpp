// SPDX-License-Identifier: Apache-2.0
// TaskGroup: its members, their failures, cancel, join and the destructor.
#include <evchan/task_group.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <mutex>
#include <utility>
#include <vector>

#include <evchan/system_error.h>

#include "channel/per_thread_access.h"
#include "task/channel_front.h"
#include "task/unhandled_exception.h"

namespace evchan {
namespace detail {

/// Shared by the group and the wrappers of its members, which may outlive
/// the group (destroyed from a member, or while its channel shuts down).
class TaskGroupState {
 public:
  TaskGroupState(std::shared_ptr<ChannelFront> front, const TaskGroupOptions& options)
      : front_(std::move(front)), options_(options) {}

  // A member's exception: a failure unless it is a cancellation.  The
  // group reports each failure exactly once (join() rethrows or reports
  // it, the destructor reports it, or, once the destructor is over, it is
  // reported at once), so the member's own handles never do.
  void memberThrew(TaskId id, const std::exception_ptr& exception) noexcept {
    if (isCancellation(exception)) return;
    bool closed;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closed = closed_;
      if (!closed) {
        try {
          failures_.emplace_back(id, exception);
        } catch (...) {
          return;  // out of memory: the task's handles report it instead
        }
        if (options_.cancelOnFailure && failures_.size() == 1) cancelLocked();
      }
    }
    leaveRunningTaskExceptionReportToGroup();
    if (closed) report({id, exception});
  }

  void add(TaskHandle member) {  // mutex_ held by the caller
    if (cancelled_) member.cancel();
    members_.push_back(std::move(member));
  }

  std::mutex& mutex() noexcept { return mutex_; }

  // Joins the members that have ended, so that a long-lived group does not
  // keep them: their exceptions are recorded (and now observed).
  void pruneLocked() {
    auto kept = members_.begin();
    for (auto member = members_.begin(); member != members_.end(); ++member) {
      if (!member->done()) {
        if (kept != member) *kept = std::move(*member);
        ++kept;
        continue;
      }
      try {
        member->join();  // ended: does not wait
      } catch (...) {
      }
    }
    members_.erase(kept, members_.end());
  }

  // pruneLocked() once the list has doubled since the last pass: a spawn
  // then costs O(1) amortized however many members are alive (a server's
  // group holds one per connection), and ended members never outnumber
  // the running ones by more than that.
  void pruneWhenGrownLocked() {
    if (members_.size() < pruneAt_) return;
    pruneLocked();
    pruneAt_ = std::max(kFirstPrune, 2 * members_.size());
  }

  // Cancels every member but `except` (the group's destroyer, if a member).
  void cancelLocked(TaskId except = 0) noexcept {
    cancelled_ = true;
    for (TaskHandle& member : members_) {
      if (member.id() != except) member.cancel();
    }
  }
  void cancel(TaskId except = 0) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    cancelLocked(except);
  }

  std::size_t running() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::size_t count = 0;
    for (const TaskHandle& member : members_) count += member.done() ? 0 : 1;
    return count;
  }

  bool isMember(TaskId id) {
    if (id == 0) return false;
    std::lock_guard<std::mutex> lock(mutex_);
    for (const TaskHandle& member : members_) {
      if (member.id() == id && !member.done()) return true;
    }
    return false;
  }

  // Waits for every member but `except`; empty when all ended, else why
  // the caller's wait ended first (cancelled, or its deadline passed): the
  // members are then left running.
  std::error_code waitForMembers(TaskId except) {
    for (;;) {
      std::vector<TaskHandle> pending;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        pruneLocked();
        for (const TaskHandle& member : members_) {
          if (member.id() != except) pending.push_back(member);
        }
      }
      if (pending.empty()) return {};
      for (TaskHandle& member : pending) {
        try {
          member.join();
        } catch (const std::system_error& e) {
          if (!member.done()) return e.code();  // the caller's wait ended, not the member
        } catch (...) {
          if (!member.done()) return std::make_error_code(std::errc::operation_canceled);
        }
      }
    }
  }

  // Takes the failures and clears the group's cancellation, for a join().
  std::vector<std::pair<TaskId, std::exception_ptr>> takeFailures() {
    std::lock_guard<std::mutex> lock(mutex_);
    cancelled_ = false;
    return std::exchange(failures_, {});
  }

  // The destructor's last step: the failures so far; later ones (members
  // left running when the destructor's wait was cut short by a shutdown)
  // are reported as they happen.
  std::vector<std::pair<TaskId, std::exception_ptr>> close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    return std::exchange(failures_, {});
  }

  void report(const std::pair<TaskId, std::exception_ptr>& failure) const noexcept {
    reportUnhandledException(*front_, failure.first, failure.second);
  }

 private:
  const std::shared_ptr<ChannelFront> front_;
  const TaskGroupOptions options_;
  std::mutex mutex_;
  static constexpr std::size_t kFirstPrune = 64;
  std::vector<TaskHandle> members_;
  std::size_t pruneAt_ = kFirstPrune;  // members_.size() that calls for the next pruneLocked()
  std::vector<std::pair<TaskId, std::exception_ptr>> failures_;
  bool cancelled_ = false;
  bool closed_ = false;  // the group object is gone
};

namespace {

// The user's function of a member whose spawn was refused.  The refusal
// destroys the member inside the channel's spawn, while TaskGroup::spawn()
// holds the group's lock; the function (whose captures' destructors may
// use the group) is moved here instead, and destroyed after the unlock.
struct RefusedMember {
  const TaskGroupState* group;
  std::unique_ptr<TaskFunction> function;
};

// Set on the spawning thread for the duration of the channel's spawn: a
// member destroyed on this thread meanwhile is the refused one (a spawn
// never runs a task, or destroys another, on the spawning thread).  Not
// inlined, as every per-thread slot a task may read (per_thread_access.h).
[[gnu::noinline]] RefusedMember*& refusedMemberSlot() noexcept {
  freshPerThreadRead();
  static thread_local RefusedMember* slot = nullptr;
  return slot;
}

class RefusedMemberScope {
 public:
  explicit RefusedMemberScope(RefusedMember& slot) noexcept : previous_(refusedMemberSlot()) {
    refusedMemberSlot() = &slot;
  }
  ~RefusedMemberScope() { refusedMemberSlot() = previous_; }
  RefusedMemberScope(const RefusedMemberScope&) = delete;
  RefusedMemberScope& operator=(const RefusedMemberScope&) = delete;

 private:
  RefusedMember* previous_;
};

// A member's function: records its failure with the group, then lets the
// exception end the task as usual (its own TaskHandle rethrows it).
class GroupMemberFunction final : public TaskFunction {
 public:
  GroupMemberFunction(std::shared_ptr<TaskGroupState> group, std::unique_ptr<TaskFunction> function) noexcept
      : group_(std::move(group)), function_(std::move(function)) {}
  ~GroupMemberFunction() override {
    RefusedMember* refused = refusedMemberSlot();
    if (refused != nullptr && refused->group == group_.get()) refused->function = std::move(function_);
  }
  GroupMemberFunction(const GroupMemberFunction&) = delete;
  GroupMemberFunction& operator=(const GroupMemberFunction&) = delete;
  void run() override {
    try {
      function_->run();
    } catch (...) {
      group_->memberThrew(this_task::id(), std::current_exception());
      throw;
    }
  }

 private:
  std::shared_ptr<TaskGroupState> group_;
  std::unique_ptr<TaskFunction> function_;
};

}  // namespace
}  // namespace detail

TaskGroup::TaskGroup(EventChannel& channel, const Options& options)
    : channel_(channel), state_(std::make_shared<detail::TaskGroupState>(channel.front_, options)) {}

TaskGroup::~TaskGroup() {
  const TaskId self = this_task::id();
  const bool fromMember = state_->isMember(self);
  state_->cancel(fromMember ? self : 0);
  if (fromMember) {
    std::fprintf(stderr,
                 "evchan: TaskGroup destroyed from its own task %llu (not allowed): the other members are "
                 "cancelled and waited for; the task goes on outside the group\n",
                 static_cast<unsigned long long>(self));
  }
  {
    // The caller's own cancellation must not cut the wait short.
    this_task::CancellationShield shield;
    state_->waitForMembers(fromMember ? self : 0);
  }
  for (const auto& failure : state_->close()) state_->report(failure);
}

TaskHandle TaskGroup::spawnBound(std::unique_ptr<detail::TaskFunction> function, const TaskOptions& options) {
  if (!function) throw SystemError(std::make_error_code(std::errc::invalid_argument), "TaskGroup::spawn");
  auto member = std::make_unique<detail::GroupMemberFunction>(state_, std::move(function));
  detail::RefusedMember refused{state_.get(), nullptr};  // outlives the lock
  // Under the lock: the member is listed before it can fail and make
  // cancelOnFailure cancel the others.
  std::lock_guard<std::mutex> lock(state_->mutex());
  state_->pruneWhenGrownLocked();
  TaskHandle task;
  {
    detail::RefusedMemberScope scope(refused);
    task = channel_.spawnBound(std::move(member), options);
  }
  state_->add(task);
  return task;
}

void TaskGroup::join() {
  if (state_->isMember(this_task::id())) {
    throw SystemError(std::make_error_code(std::errc::resource_deadlock_would_occur),
                      "TaskGroup::join from one of its own tasks");
  }
  if (const std::error_code ended = state_->waitForMembers(0)) throw SystemError(ended, "TaskGroup::join");
  std::vector<std::pair<TaskId, std::exception_ptr>> failures = state_->takeFailures();
  if (failures.empty()) return;
  for (std::size_t i = 1; i < failures.size(); ++i) state_->report(failures[i]);
  std::rethrow_exception(failures.front().second);
}

void TaskGroup::cancel() noexcept { state_->cancel(); }

std::size_t TaskGroup::size() const { return state_->running(); }

}  // namespace evchan
