// SPDX-License-Identifier: Apache-2.0
// setEnvironment() and unsetEnvironment() on POSIX hosts.
#include "support/environment.h"

#include <cstdlib>

namespace evchan::test {

void setEnvironment(const char* name, const char* value) { ::setenv(name, value, 1); }

void unsetEnvironment(const char* name) { ::unsetenv(name); }

}  // namespace evchan::test
