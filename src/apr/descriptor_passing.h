// SPDX-License-Identifier: Apache-2.0
// Internal: whether a socket can carry passed descriptors.
#ifndef EVCHAN_SRC_APR_DESCRIPTOR_PASSING_H
#define EVCHAN_SRC_APR_DESCRIPTOR_PASSING_H

#include <apr_portable.h>

namespace evchan::detail {

/// Whether descriptors can be passed over the socket (POSIX: any but an
/// IPv4 or IPv6 one, and true when the host cannot tell), which decides how
/// receiveSome() reads it.  Asked once per socket, when a channel first
/// watches it.  Defined per host (src/posix/, src/win32/socket_syscalls.cpp).
bool socketPassesDescriptors(apr_os_sock_t fd) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_DESCRIPTOR_PASSING_H
