// SPDX-License-Identifier: Apache-2.0
// openDescriptorCount() and openDescriptorNames() on POSIX hosts (Linux:
// /proc/self/fd; elsewhere unknown, which turns the leak check off).
#include "support/leak_checked_fixture.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <string>

#include "support/descriptor_names.h"

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

std::string openDescriptorNames() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return {};
  const int own = dirfd(dir);
  std::map<int, std::string> names;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const int fd = std::atoi(entry->d_name);
    if (fd == own) continue;
    char target[256];
    const std::string path = std::string("/proc/self/fd/") + entry->d_name;
    const ssize_t length = readlink(path.c_str(), target, sizeof target - 1);
    names[fd] = length > 0 ? std::string(target, static_cast<std::size_t>(length)) : "?";
  }
  closedir(dir);
  std::string text;
  for (const auto& [fd, name] : names) text += (text.empty() ? "" : ", ") + std::to_string(fd) + " " + name;
  return text;
}

}  // namespace evchan::test
