// SPDX-License-Identifier: Apache-2.0
// Internal: the channel's and its backends' access to the private parts of
// the datagram events, and the room a completion backend uses in them.
#ifndef EVCHAN_SRC_POLLER_DATAGRAM_ACCESS_H
#define EVCHAN_SRC_POLLER_DATAGRAM_ACCESS_H

#include <cstddef>
#include <new>

#include <evchan/buffer.h>
#include <evchan/datagram_events.h>

namespace evchan::detail {

/// What a completion backend keeps in a datagram event while the kernel
/// works on it: the message header (the backend's own layout, a Linux
/// struct msghdr), the one piece it points to, and the peer's address (a
/// struct sockaddr, filled by the kernel on a receive, the destination on
/// a send).  After a receive, the backend's finishMessage() sets
/// `addressLength` and `truncated` from the header.
struct DatagramScratch {
  alignas(std::max_align_t) unsigned char header[64];
  ConstBuffer piece;
  alignas(std::max_align_t) unsigned char address[128];
  unsigned addressLength = 0;
  bool truncated = false;
};
static_assert(sizeof(DatagramScratch) <= kDatagramScratchSize && alignof(DatagramScratch) <= 16,
              "a datagram event's scratch (alignas(16)) holds a DatagramScratch");

struct DatagramEventAccess {
  static std::size_t& transferred(DatagramReceiveEvent& e) noexcept { return e.transferred_; }
  static std::size_t& transferred(DatagramSendEvent& e) noexcept { return e.transferred_; }
  static Address& peer(DatagramReceiveEvent& e) noexcept { return e.peer_; }
  /// A fresh scratch for the operation about to be submitted.
  template <class DatagramEvent>
  static DatagramScratch& freshScratch(DatagramEvent& e) noexcept {
    return *new (e.scratchBytes()) DatagramScratch{};
  }
  /// The scratch freshScratch() made for the operation under way.
  template <class DatagramEvent>
  static DatagramScratch& scratch(DatagramEvent& e) noexcept {
    return *std::launder(reinterpret_cast<DatagramScratch*>(e.scratchBytes()));
  }
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_POLLER_DATAGRAM_ACCESS_H
