// SPDX-License-Identifier: Apache-2.0
// Internal: what a step of a stream call fails with when it finds the
// stream closed, one rule for every stream (StreamSocket, ShmStream,
// TlsStream, and Stream's own readExactly()/writeAll()).
#ifndef EVCHAN_SRC_NET_CLOSED_UNDER_MARK_H
#define EVCHAN_SRC_NET_CLOSED_UNDER_MARK_H

#include <system_error>

#include <evchan/error.h>
#include <evchan/stream.h>

namespace evchan::detail {

/// `mark` is the cancel mark the call took when it began: non-zero only if
/// the stream was open then.  A close() since came during the call, and
/// cancels it (operation_canceled), as it cancels a single wait under way;
/// Errc::not_open is for calls begun after the close.
inline std::error_code closedUnderMark(Stream::CancelMark mark) noexcept {
  return mark != 0 ? std::make_error_code(std::errc::operation_canceled) : std::error_code(Errc::not_open);
}

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_NET_CLOSED_UNDER_MARK_H
