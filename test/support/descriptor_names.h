// SPDX-License-Identifier: Apache-2.0
// For a leak's message: what the process's open descriptors are.
#ifndef EVCHAN_TEST_SUPPORT_DESCRIPTOR_NAMES_H
#define EVCHAN_TEST_SUPPORT_DESCRIPTOR_NAMES_H

#include <string>

namespace evchan::test {

/// Every open descriptor of this process and what it is, as
/// "0 /dev/null, 3 anon_inode:[eventpoll], 5 socket:[1234]" (Linux:
/// /proc/self/fd); empty where the host does not tell.
std::string openDescriptorNames();

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_DESCRIPTOR_NAMES_H
