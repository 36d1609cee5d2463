// SPDX-License-Identifier: Apache-2.0
// openDescriptorCount() and openDescriptorNames() on POSIX hosts (Linux:
// /proc/self/fd; elsewhere unknown, which turns the leak check off).
#include "support/leak_checked_fixture.h"

#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>

#include "support/descriptor_names.h"

namespace evchan::test {

namespace {

bool connectedToNameServerPort(int fd) {
  sockaddr_storage peer{};
  socklen_t length = sizeof peer;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0) return false;
  constexpr std::uint16_t kDnsPort = 53;
  if (peer.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(peer).sin_port) == kDnsPort;
  if (peer.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(peer).sin6_port) == kDnsPort;
  return false;
}

// Calls visit(fd) for each open descriptor but the directory stream's
// own; false when the host does not list them.
template <class Visit>
bool forEachDescriptor(Visit visit) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return false;
  const int own = dirfd(dir);
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const int fd = std::atoi(entry->d_name);
    if (fd != own) visit(fd);
  }
  closedir(dir);
  return true;
}

}  // namespace

int openDescriptorCount() {
  int count = 0;
  return forEachDescriptor([&](int) { ++count; }) ? count : -1;
}

int openDescriptorCountBesidesNameServerSockets() {
  int count = 0;
  return forEachDescriptor([&](int fd) { count += !connectedToNameServerPort(fd); }) ? count : -1;
}

std::string openDescriptorNames() {
  std::map<int, std::string> names;
  forEachDescriptor([&](int fd) {
    char target[256];
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t length = readlink(path.c_str(), target, sizeof target - 1);
    names[fd] = length > 0 ? std::string(target, static_cast<std::size_t>(length)) : "?";
  });
  std::string text;
  for (const auto& [fd, name] : names) text += (text.empty() ? "" : ", ") + std::to_string(fd) + " " + name;
  return text;
}

}  // namespace evchan::test
