// Internal: a socket's registration with at most one event channel.
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

/// Lives in SocketState.  The first event posted on the socket registers it
/// with that event's channel; destroying the handle (closing the socket)
/// cancels the socket's pending events and unregisters it before the
/// descriptor is closed.
class WatchHandle {
 public:
  WatchHandle() = default;
  ~WatchHandle();
  WatchHandle(const WatchHandle&) = delete;
  WatchHandle& operator=(const WatchHandle&) = delete;

  /// The socket's watch in `core`, registering it on first use.
  /// Errc::wrong_channel when another channel watches it already.
  Watch* watchIn(ChannelCore& core, apr_socket_t* socket, std::error_code& ec);
  /// The socket's watch if `core` registered it, else null; never registers.
  Watch* registeredIn(const ChannelCore& core) const noexcept;

 private:
  std::mutex mutex_;  // serialises the first registration
  std::shared_ptr<ChannelCore> core_;
  std::atomic<Watch*> watch_{nullptr};  // set once, after core_
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_POLLER_WATCH_HANDLE_H
