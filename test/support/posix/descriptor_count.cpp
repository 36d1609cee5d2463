// SPDX-License-Identifier: Apache-2.0
// openDescriptorCount() on POSIX hosts (Linux: /proc/self/fd; elsewhere
// unknown, which turns the leak check off).
#include "support/leak_checked_fixture.h"

#include <dirent.h>

namespace evchan::test {

int openDescriptorCount() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // the directory stream's own descriptor
}

}  // namespace evchan::test
