// SPDX-License-Identifier: Apache-2.0
// Internal: starting a task, for EventChannel::spawn.
#ifndef EVCHAN_SRC_TASK_SPAWN_H
#define EVCHAN_SRC_TASK_SPAWN_H

#include <cstddef>
#include <memory>
#include <system_error>

#include <evchan/task.h>

namespace evchan::detail {

struct ChannelFront;

/// Starts a task on `front`'s channel; an empty handle with `ec` set on
/// failure (std::errc::invalid_argument for a null `function`).
/// Defined with the tasks (src/task/this_task.cpp), or, in builds without
/// the native POSIX layer, to fail with function_not_supported.
TaskHandle spawnTask(const std::shared_ptr<ChannelFront>& front, std::unique_ptr<TaskFunction> function,
                     std::size_t stackSize, std::error_code& ec);

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_TASK_SPAWN_H
