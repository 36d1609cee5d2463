// SPDX-License-Identifier: Apache-2.0
// evchan::currentThreadId(): the thread's id, never folded across a switch.
#include <evchan/thread_identity.h>

#include "channel/per_thread_access.h"

namespace evchan {

// Not inlined (not even by LTO), and with a side effect the optimiser must
// keep: two calls around a task switch are two reads, never one.
[[gnu::noinline]] std::thread::id currentThreadId() noexcept {
  detail::freshPerThreadRead();
  return std::this_thread::get_id();
}

}  // namespace evchan
