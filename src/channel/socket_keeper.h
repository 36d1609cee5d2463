// SPDX-License-Identifier: Apache-2.0
// Internal: who keeps a socket event's socket alive while it is posted.
#ifndef EVCHAN_SRC_CHANNEL_SOCKET_KEEPER_H
#define EVCHAN_SRC_CHANNEL_SOCKET_KEEPER_H

namespace evchan::detail {

/// Who keeps a socket event's socket from being destroyed while
/// ChannelCore::post() works on it.
/// - `post`: post() pins it against a close() on another thread, and
///   refuses it (not_open) once it is closed or closing.
/// - `caller`: the caller is inside a SocketCall on that socket, whose
///   close() waits for the call to leave, so the socket stays; post() then
///   neither pins it nor checks it open (a close() under way cancels the
///   call's wait instead, and the call reports operation_canceled).
enum class SocketKeeper : unsigned char { post, caller };

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_CHANNEL_SOCKET_KEEPER_H
