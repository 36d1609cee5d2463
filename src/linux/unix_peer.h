// SPDX-License-Identifier: Apache-2.0
// Internal: what Linux tells about an AF_UNIX socket's other end (the
// shared-memory stream's doorbell checks).
#ifndef EVCHAN_SRC_LINUX_UNIX_PEER_H
#define EVCHAN_SRC_LINUX_UNIX_PEER_H

#include <cstdint>

namespace evchan::detail {

/// True if `fd` is one end of an AF_UNIX stream socketpair(2): a stream
/// socket, not listening, connected, neither end bound to a name.
bool isSocketPairEnd(int fd) noexcept;

/// The inode number identifying the socket `fd`; 0 if it is none.
std::uint64_t socketInode(int fd) noexcept;

/// The inode of the socket at the other end of the AF_UNIX socket `fd`,
/// asked of the kernel's socket diagnostics (unix_diag); 0 when it cannot
/// tell (a kernel without unix_diag, a sandbox without netlink).
std::uint64_t unixPeerInode(int fd) noexcept;

/// True when unixPeerInode() works on this kernel.
bool kernelTellsUnixPeers() noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_LINUX_UNIX_PEER_H
