// SPDX-License-Identifier: Apache-2.0
// Setting the process's environment variables from tests.
#ifndef EVCHAN_TEST_SUPPORT_ENVIRONMENT_H
#define EVCHAN_TEST_SUPPORT_ENVIRONMENT_H

namespace evchan::test {

/// Sets the environment variable `name` to `value` for this process, as
/// std::getenv() then sees it.  Not thread safe, like setenv(3).
void setEnvironment(const char* name, const char* value);

/// Removes the environment variable `name` from this process's environment.
void unsetEnvironment(const char* name);

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_ENVIRONMENT_H
