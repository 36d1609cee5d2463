// SPDX-License-Identifier: Apache-2.0
// Internal: reporting an exception that escaped a task nobody joined.
#ifndef EVCHAN_SRC_TASK_UNHANDLED_EXCEPTION_H
#define EVCHAN_SRC_TASK_UNHANDLED_EXCEPTION_H

#include <exception>

#include <evchan/task.h>

namespace evchan::detail {

struct ChannelFront;

/// True when `exception` is the end of a cancelled wait: a
/// std::system_error with std::errc::operation_canceled (shutdown,
/// TaskHandle::cancel(), a cancelled socket), which is not reported.
bool isCancellation(const std::exception_ptr& exception) noexcept;

/// Called by a TaskGroup member while its exception propagates: the group
/// reports it, so the task's handles never do.  Nothing outside a task.
/// Defined with the tasks (task_state.cpp), or as nothing without them.
void leaveRunningTaskExceptionReportToGroup() noexcept;

/// Hands `exception` of task `id` to the channel's onUnhandledException,
/// or prints the default line when there is none (or it threw).
void reportUnhandledException(const ChannelFront& front, TaskId id, const std::exception_ptr& exception) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_TASK_UNHANDLED_EXCEPTION_H
