// SPDX-License-Identifier: Apache-2.0
// What Linux tells about an AF_UNIX socket's other end: socketpair ends,
// inodes, and the peer's inode through unix_diag.
#include "linux/unix_peer.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace evchan::detail {

bool isSocketPairEnd(int fd) noexcept {
  int domain = 0, type = 0, listening = 1;
  socklen_t length = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) != 0 || domain != AF_UNIX) return false;
  length = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0 || type != SOCK_STREAM) return false;
  length = sizeof listening;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || listening != 0) return false;
  // Unconnected: getpeername() fails.  A connect()ed socket's peer, or an
  // accept()ed one's own address, is the listener's name: only the two
  // ends of a socketpair (that nobody bound) are unnamed on both sides.
  sockaddr_un address;
  length = sizeof address;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0 || length != sizeof(sa_family_t))
    return false;
  length = sizeof address;
  return getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0 && length == sizeof(sa_family_t);
}

std::uint64_t socketInode(int fd) noexcept {
  struct stat status;
  if (fstat(fd, &status) != 0 || !S_ISSOCK(status.st_mode)) return 0;
  return status.st_ino;
}

std::uint64_t unixPeerInode(int fd) noexcept {
  const std::uint64_t inode = socketInode(fd);
  if (inode == 0 || inode > UINT32_MAX) return 0;  // unix_diag names sockets by 32 bits
  const int diag = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (diag < 0) return 0;
  struct {
    nlmsghdr header;
    unix_diag_req request;
  } query = {};
  query.header.nlmsg_len = sizeof query;
  query.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  query.header.nlmsg_flags = NLM_F_REQUEST;
  query.request.sdiag_family = AF_UNIX;
  query.request.udiag_states = ~0u;
  query.request.udiag_ino = static_cast<std::uint32_t>(inode);
  query.request.udiag_show = UDIAG_SHOW_PEER;
  query.request.udiag_cookie[0] = query.request.udiag_cookie[1] = ~0u;  // any cookie
  sockaddr_nl kernel = {};
  kernel.nl_family = AF_NETLINK;
  alignas(nlmsghdr) char reply[512];
  ssize_t received = -1;
  if (sendto(diag, &query, sizeof query, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) ==
      static_cast<ssize_t>(sizeof query)) {
    // The kernel answers while sendto() runs: the reply is already queued.
    do received = recv(diag, reply, sizeof reply, MSG_DONTWAIT);
    while (received < 0 && errno == EINTR);
  }
  ::close(diag);
  if (received <= 0) return 0;
  auto* header = reinterpret_cast<nlmsghdr*>(reply);
  if (!NLMSG_OK(header, static_cast<std::size_t>(received)) || header->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
      header->nlmsg_len < NLMSG_LENGTH(sizeof(unix_diag_msg)))
    return 0;
  auto* message = static_cast<unix_diag_msg*>(NLMSG_DATA(header));
  if (message->udiag_ino != inode) return 0;
  int left = static_cast<int>(header->nlmsg_len - NLMSG_LENGTH(sizeof(unix_diag_msg)));
  for (auto* attribute = reinterpret_cast<rtattr*>(message + 1); RTA_OK(attribute, left);
       attribute = RTA_NEXT(attribute, left)) {
    if (attribute->rta_type != UNIX_DIAG_PEER || RTA_PAYLOAD(attribute) < sizeof(std::uint32_t)) continue;
    std::uint32_t peer;
    std::memcpy(&peer, RTA_DATA(attribute), sizeof peer);
    return peer;
  }
  return 0;
}

bool kernelTellsUnixPeers() noexcept {
  static const bool works = [] {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return false;
    const bool answer = unixPeerInode(pair[0]) == socketInode(pair[1]) && socketInode(pair[1]) != 0;
    ::close(pair[0]);
    ::close(pair[1]);
    return answer;
  }();
  return works;
}

}  // namespace evchan::detail
