// SPDX-License-Identifier: Apache-2.0
// The names of the FiberContext implementations (for messages and tests),
// on every platform with tasks.
#include "task/context/fiber_context.h"

namespace evchan::detail {

const char* contextKindName(ContextKind kind) noexcept {
  switch (kind) {
    case ContextKind::BoostContext: return "boost";
    case ContextKind::Ucontext: return "ucontext";
    case ContextKind::Win32Fiber: break;
  }
  return "win32-fiber";
}

}  // namespace evchan::detail
