// SPDX-License-Identifier: Apache-2.0
// Internal: the room in a datagram or descriptor event where a completion
// backend keeps the message the kernel works on.
#ifndef EVCHAN_SRC_POLLER_MESSAGE_SCRATCH_H
#define EVCHAN_SRC_POLLER_MESSAGE_SCRATCH_H

#include <cstddef>

#include <evchan/buffer.h>

namespace evchan::detail {

/// What a completion backend keeps in an event while the kernel works on
/// its recvmsg or sendmsg: the message header (the backend's own layout, a
/// Linux struct msghdr), the one piece it points to, the peer's address (a
/// struct sockaddr: filled by the kernel on a datagram receive, the
/// destination of a datagram send) and, for descriptor passing, a control
/// message (SCM_RIGHTS) somewhere in the event.  After a receive, the
/// backend's finishMessage() sets `addressLength`, `truncated`,
/// `controlLength` and `controlTruncated` from the header.
struct MessageScratch {
  alignas(std::max_align_t) unsigned char header[64];
  ConstBuffer piece;
  alignas(std::max_align_t) unsigned char address[128];
  unsigned addressLength = 0;
  bool truncated = false;
  /// Null for a datagram.  A descriptor receive: the room for what comes
  /// (`controlLength` bytes; then what came).  A send: the message built.
  unsigned char* control = nullptr;
  std::size_t controlLength = 0;
  bool controlTruncated = false;
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_POLLER_MESSAGE_SCRATCH_H
