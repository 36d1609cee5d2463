// Internal: starting a task, for EventChannel::spawn.
#ifndef EVCHAN_SRC_TASK_SPAWN_H
#define EVCHAN_SRC_TASK_SPAWN_H

#include <cstddef>
#include <functional>
#include <memory>
#include <system_error>

#include <evchan/task.h>

namespace evchan::detail {

class ChannelCore;

/// Starts a task on `core`; an empty handle with `ec` set on failure.
/// Defined with the tasks (src/task/this_task.cpp), or, in builds without
/// the native POSIX layer, to fail with function_not_supported.
TaskHandle spawnTask(const std::shared_ptr<ChannelCore>& core, std::function<void()> function,
                     std::size_t stackSize, std::error_code& ec);

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_TASK_SPAWN_H
