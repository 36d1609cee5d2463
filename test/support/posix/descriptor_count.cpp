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

// Open descriptors but the directory stream's own, and but those `skip` is true for.
template <class Skip>
int countDescriptors(Skip skip) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  const int own = dirfd(dir);
  int count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const int fd = std::atoi(entry->d_name);
    if (fd != own && !skip(fd)) ++count;
  }
  closedir(dir);
  return count;
}

}  // namespace

int openDescriptorCount() {
  return countDescriptors([](int) { return false; });
}

int openDescriptorCountBesidesNameServerSockets() { return countDescriptors(connectedToNameServerPort); }

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
