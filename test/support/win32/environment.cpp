// SPDX-License-Identifier: Apache-2.0
// setEnvironment() and unsetEnvironment() on Windows hosts: the C
// runtime's copy of the environment is the one std::getenv() reads.
#include "support/environment.h"

#include <cstdlib>

namespace evchan::test {

void setEnvironment(const char* name, const char* value) { ::_putenv_s(name, value); }

// An empty value removes the variable.
void unsetEnvironment(const char* name) { ::_putenv_s(name, ""); }

}  // namespace evchan::test
