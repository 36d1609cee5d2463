// SPDX-License-Identifier: Apache-2.0
// holdAcrossFork() on POSIX: pthread_atfork().
#include "apr/fork_hooks.h"

#include <pthread.h>

namespace evchan::detail {

bool holdAcrossFork(void (*prepare)(), void (*resume)()) noexcept {
  return pthread_atfork(prepare, resume, resume) == 0;
}

bool holdAcrossFork(void (*prepare)(), void (*resume)(), void (*resumeInChild)()) noexcept {
  return pthread_atfork(prepare, resume, resumeInChild) == 0;
}

}  // namespace evchan::detail
