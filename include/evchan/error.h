// SPDX-License-Identifier: Apache-2.0
// Error reporting: std::error_code categories for APR statuses and for
// evchan's own conditions.
#ifndef EVCHAN_ERROR_H
#define EVCHAN_ERROR_H

#include <system_error>

#include <evchan/export.h>

namespace evchan {

/// The category of APR status codes (apr_status_t).  message() is
/// apr_strerror()'s text; default_error_condition() maps the portable
/// conditions (refused, timed out, reset, would block, ...) onto std::errc,
/// so `ec == std::errc::connection_refused` holds on every platform.
/// Thread-safe.
EVCHAN_API const std::error_category& apr_category() noexcept;

/// Wraps an apr_status_t (an int on every platform) in an std::error_code.
/// APR_SUCCESS gives an empty code.
EVCHAN_API std::error_code makeAprError(int aprStatus) noexcept;

/// evchan's own error conditions: misuse of the API and stream states that
/// have no operating-system code.  Each compares equal to the nearest
/// std::errc (bad input to std::errc::invalid_argument, and so on).
enum class Errc {
  end_of_stream = 1,  ///< the peer closed the stream before the data arrived
  not_open,           ///< the socket or listener is closed or was moved from
  null_buffer,        ///< a null buffer with a non-zero length
  port_out_of_range,  ///< a port outside 0..65535
  empty_host,         ///< an empty host name
  bad_endpoint,       ///< not host:port or tcp://host:port; for a local socket, an empty name, "@" or a NUL
  negative_timeout,   ///< a timeout below zero
  no_address,         ///< a name resolved to no address of the wanted family
  already_in_flight,  ///< the event was posted and has not come back yet
  channel_shut_down,  ///< the event channel is shut down
  socket_busy,        ///< a read (or write) is already pending on the socket
  wrong_channel,      ///< no longer reported: a socket may move between event channels
  descriptor_too_large,  ///< the descriptor is beyond what the backend can watch (select: FD_SETSIZE)
  message_too_long,      ///< a line or message is longer than the caller allowed (BufferedReader)
};

/// The category of evchan::Errc values.  Thread-safe.
EVCHAN_API const std::error_category& evchan_category() noexcept;

/// Makes `evchan::Errc` values usable as std::error_code (found by ADL).
EVCHAN_API std::error_code make_error_code(Errc e) noexcept;

}  // namespace evchan

namespace std {
template <>
struct is_error_code_enum<evchan::Errc> : true_type {};
}  // namespace std

#endif  // EVCHAN_ERROR_H
