// SPDX-License-Identifier: Apache-2.0
// Internal: the per-socket state a channel keeps (Go's "pollDesc").
#ifndef EVCHAN_SRC_POLLER_WATCH_H
#define EVCHAN_SRC_POLLER_WATCH_H

#include <atomic>
#include <cstddef>
#include <mutex>

#include <apr_network_io.h>
#include <apr_portable.h>

#include <evchan/event.h>

namespace evchan::detail {

/// Bytes a completion backend may keep per watch for a gather send's
/// header (a Linux struct msghdr is 56).
constexpr std::size_t kSendHeaderSize = 64;

/// A socket registered with a channel's poller.  `mutex` guards the pending
/// events and hints; the poller and posting threads both take it, which is
/// what makes "try, then park" race-free against readiness reports.
struct Watch {
  Watch(apr_socket_t* aprSocket, apr_os_sock_t native, bool descriptorsPassable) noexcept
      : socket(aprSocket), fd(native), passesDescriptors(descriptorsPassable) {}

  std::mutex mutex;
  apr_socket_t* const socket;
  const apr_os_sock_t fd;
  /// Descriptors can be passed over it (any but an IP socket): reads use
  /// the costlier call that says when they end early (receiveSome()).
  const bool passesDescriptors;
  Event* reader = nullptr;  ///< pending ReadEvent or AcceptEvent
  Event* writer = nullptr;  ///< pending WriteEvent or ConnectEvent
  /// Edge-triggered pollers: false once the socket is known to be drained
  /// (EAGAIN or a short read), so the next operation parks without a syscall.
  /// Written under `mutex`; ChannelCore::tryOnce() reads them without it.
  std::atomic<bool> readHint{true};
  std::atomic<bool> writeHint{true};
  /// From now on every operation tries the socket: the poller reported a
  /// hang-up, reset or error (no further edge will come), or urgent data
  /// (a read stops at its mark with bytes queued behind it, so a short
  /// read no longer means drained).
  bool alwaysTry = false;
  bool retired = false;  ///< the socket is closing; nothing may park here
  /// Completion backends: operations of this watch in the kernel whose
  /// completion has not been handled.  The watch outlives them.
  int ringOps = 0;
  /// Completion backends: the slots (kReadable, kWritable) whose operation
  /// a cancel() has already asked the kernel to cancel; another cancel()
  /// of it is false, as for an event already completing.
  unsigned ringCancels = 0;
  /// Completion backends: where a pending connect goes (in the socket's pool).
  apr_sockaddr_t* connectTarget = nullptr;
  /// Completion backends: room for the message header of the writer
  /// slot's gather send (io_uring: a struct msghdr), which the kernel may
  /// read until that send completes.  Only the backend looks inside.
  alignas(std::max_align_t) unsigned char sendHeader[kSendHeaderSize];
  /// Completion backends that keep a record per operation (IOCP): the
  /// reader's and the writer's, for cancelling it; the backend guards them.
  void* operations[2] = {nullptr, nullptr};

  Watch* prev = nullptr;  ///< the channel's list of live (or retired) watches
  Watch* next = nullptr;
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_POLLER_WATCH_H
