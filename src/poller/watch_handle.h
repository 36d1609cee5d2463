// SPDX-License-Identifier: Apache-2.0
// Internal: a socket's registrations with the event channels it was used on.
#ifndef EVCHAN_SRC_POLLER_WATCH_HANDLE_H
#define EVCHAN_SRC_POLLER_WATCH_HANDLE_H

#include <atomic>
#include <memory>
#include <mutex>
#include <system_error>

#include <apr_network_io.h>

namespace evchan::detail {

class ChannelCore;
struct Watch;

/// Lives in SocketState.  The first event posted on the socket through a
/// channel registers it with that channel (its own Watch there), so a
/// socket moves between channels: each channel watches the events posted
/// through it.  Registrations last until the handle is destroyed (the
/// socket closes), which cancels the socket's pending events in every
/// channel and unregisters it before the descriptor is closed.
class WatchHandle {
 public:
  WatchHandle() = default;
  ~WatchHandle();
  WatchHandle(const WatchHandle&) = delete;
  WatchHandle& operator=(const WatchHandle&) = delete;

  /// The socket's watch in `core`, registering it there on first use.
  Watch* watchIn(ChannelCore& core, apr_socket_t* socket, std::error_code& ec);
  /// The socket's watch if `core` registered it, else null; never registers.
  Watch* registeredIn(const ChannelCore& core) const noexcept;

 private:
  /// Immutable once published; freed only by the destructor, so a reader
  /// may walk the list without the lock.
  struct Registration {
    std::shared_ptr<ChannelCore> core;
    Watch* watch;
    Registration* next;
  };

  // What every post reads first, together: the list's head and, in
  // place, the first registration, which is the only one for a socket
  // used on one channel (no allocation, no separate line to fetch).
  std::atomic<Registration*> registrations_{nullptr};  // newest first
  Registration first_{nullptr, nullptr, nullptr};
  std::mutex mutex_;  // serialises registrations
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_POLLER_WATCH_HANDLE_H
