// SPDX-License-Identifier: Apache-2.0
// holdAcrossFork() on Windows, which has no fork(): nothing to hold.
#include "apr/fork_hooks.h"

namespace evchan::detail {

bool holdAcrossFork(void (*)(), void (*)()) noexcept { return true; }

bool holdAcrossFork(void (*)(), void (*)(), void (*)()) noexcept { return true; }

}  // namespace evchan::detail
