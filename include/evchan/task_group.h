// SPDX-License-Identifier: Apache-2.0
// TaskGroup: tasks joined, cancelled and destroyed together.
#ifndef EVCHAN_TASK_GROUP_H
#define EVCHAN_TASK_GROUP_H

#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>

#include <evchan/event_channel.h>
#include <evchan/export.h>
#include <evchan/task.h>

namespace evchan {

namespace detail {
class TaskGroupState;
}

/// Settings for a TaskGroup.
struct EVCHAN_API TaskGroupOptions {
  /// When a member fails (ends with an exception other than the
  /// operation_canceled of a cancellation), cancel every other member, as
  /// cancel() does: the first failure takes the group down.
  bool cancelOnFailure = false;
};

/// A set of tasks on one channel that end together (structured
/// concurrency): spawn() adds a member, join() waits for every member,
/// cancel() cancels them all, and the destructor cancels and waits.
///
/// Failures: a member that ends with an exception other than
/// operation_canceled (std::system_error, as cancellation and shutdown
/// end tasks) has failed.  join() rethrows the first failure (in the order
/// they happened); the others are handed to the channel's
/// onUnhandledException (by default one line each on stderr), never
/// dropped silently.  The member's own TaskHandle (from spawn()) still
/// rethrows its exception, but a failure is the group's to report: it is
/// reported once, by join() or the destructor (or, for a member still
/// running when the destructor returned, when it fails), never again when
/// the member's handles are dropped.
///
/// Thread-safe: members may spawn more members, and any thread or task
/// may spawn, cancel or join.  The group must not outlive its channel.
/// @par Example
/// @code
///   TaskGroup connections(*channel);
///   for (;;) connections.spawn(serve, listener.accept());   // serve(TcpSocket)
///   // elsewhere: connections.cancel(); connections.join();
/// @endcode
class EVCHAN_API TaskGroup {
 public:
  /// The settings the constructor takes.
  using Options = TaskGroupOptions;

  /// An empty group whose members run on `channel`, which must outlive it.
  /// Throws std::bad_alloc when out of memory.
  explicit TaskGroup(EventChannel& channel, const Options& options = Options());
  /// Cancels every member and waits for them all to end (suspending the
  /// caller in a task, blocking it on a thread), shielded from the
  /// caller's own cancellation; the failures not yet rethrown by join()
  /// go to the channel's onUnhandledException.  If the caller's channel is
  /// shut down meanwhile (a task of it cannot wait any more) it returns
  /// without waiting: the shutdown unwinds the members.
  ///
  /// Destroying a group from inside one of its own members is not allowed
  /// (the member would wait for itself): it is detected, one line on
  /// stderr says so, the other members are cancelled and waited for, and
  /// the calling task goes on, no longer a member of any group.
  ~TaskGroup();
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  ///@{
  /// Starts `function(arguments...)` as a member, as EventChannel::spawn
  /// does (same forms, move-only types welcome, same errors thrown).  A
  /// member spawned once the group is cancelled starts cancelled: its
  /// first wait throws operation_canceled.
  template <typename F, typename... Arguments,
            typename = std::enable_if_t<detail::isTaskFunction<F, Arguments...>>>
  TaskHandle spawn(F&& function, Arguments&&... arguments) {
    return spawnBound(detail::bindTaskFunction(std::forward<F>(function), std::forward<Arguments>(arguments)...),
                      TaskOptions());
  }
  template <typename F, typename... Arguments,
            typename = std::enable_if_t<detail::isTaskFunction<F, Arguments...>>>
  TaskHandle spawn(const TaskOptions& options, F&& function, Arguments&&... arguments) {
    return spawnBound(detail::bindTaskFunction(std::forward<F>(function), std::forward<Arguments>(arguments)...),
                      options);
  }
  ///@}

  /// Waits until every member has ended, those spawned meanwhile included,
  /// then rethrows the first failure (the others go to the channel's
  /// onUnhandledException); the group is then empty, uncancelled and
  /// usable again.  Inside a task the wait is a cancellation point: when
  /// the caller itself is cancelled or its channel shut down, join()
  /// throws SystemError(operation_canceled) and the group is left as it
  /// was.  Called from one of the group's own members it throws
  /// SystemError(std::errc::resource_deadlock_would_occur).
  void join();
  /// Cancels every member (TaskHandle::cancel()), and those spawned until
  /// the next join() ends.  Harmless on an empty or ended group, twice,
  /// or from a member.
  void cancel() noexcept;
  /// The members that have not ended yet.
  std::size_t size() const;

 private:
  TaskHandle spawnBound(std::unique_ptr<detail::TaskFunction> function, const TaskOptions& options);

  EventChannel& channel_;
  std::shared_ptr<detail::TaskGroupState> state_;
};

}  // namespace evchan

#endif  // EVCHAN_TASK_GROUP_H
