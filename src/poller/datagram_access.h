// SPDX-License-Identifier: Apache-2.0
// Internal: the channel's and its backends' access to the private parts of
// the datagram events, and the room a completion backend uses in them.
#ifndef EVCHAN_SRC_POLLER_DATAGRAM_ACCESS_H
#define EVCHAN_SRC_POLLER_DATAGRAM_ACCESS_H

#include <cstddef>
#include <new>

#include <evchan/datagram_events.h>

#include "poller/message_scratch.h"

namespace evchan::detail {

static_assert(sizeof(MessageScratch) <= kDatagramScratchSize && alignof(MessageScratch) <= 16,
              "a datagram event's scratch (alignas(16)) holds a MessageScratch");

struct DatagramEventAccess {
  static std::size_t& transferred(DatagramReceiveEvent& e) noexcept { return e.transferred_; }
  static std::size_t& transferred(DatagramSendEvent& e) noexcept { return e.transferred_; }
  static Address& peer(DatagramReceiveEvent& e) noexcept { return e.peer_; }
  /// A fresh scratch for the operation about to be submitted.
  template <class DatagramEvent>
  static MessageScratch& freshScratch(DatagramEvent& e) noexcept {
    return *new (e.scratchBytes()) MessageScratch{};
  }
  /// The scratch freshScratch() made for the operation under way.
  template <class DatagramEvent>
  static MessageScratch& scratch(DatagramEvent& e) noexcept {
    return *std::launder(reinterpret_cast<MessageScratch*>(e.scratchBytes()));
  }
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_POLLER_DATAGRAM_ACCESS_H
