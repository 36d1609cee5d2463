// SPDX-License-Identifier: Apache-2.0
// Internal: the per-platform datagram primitives under UdpSocket and the
// datagram events.
#ifndef EVCHAN_SRC_APR_DATAGRAM_IO_H
#define EVCHAN_SRC_APR_DATAGRAM_IO_H

#include <cstddef>
#include <memory>
#include <system_error>

#include <apr_network_io.h>

#include <evchan/address.h>

#include "apr/socket_state.h"

namespace evchan::detail {

/// Receives one datagram without waiting.  `from`, when not null, receives
/// the sender's address in its `sa` and `salen` (senderAddress() reads
/// it).  `received` is the bytes delivered.  A datagram longer than `size`
/// delivers `size` bytes and returns std::errc::message_size (POSIX:
/// recvmsg's MSG_TRUNC; Windows: WSAEMSGSIZE).  No datagram queued is the
/// would-block status; an ICMP port unreachable on a connected socket is
/// connection_refused on every host.  Defined per host (src/posix/,
/// src/win32/ datagram_syscalls.cpp).
std::error_code receiveDatagram(apr_socket_t* socket, void* buffer, std::size_t size, apr_sockaddr_t* from,
                                std::size_t& received) noexcept;

/// Sends one datagram without waiting (and without SIGPIPE), to `to`, or
/// to the connected peer when `to` is null.  `sent` is the bytes sent.
/// A full send buffer is the would-block status.  Defined per host.
std::error_code sendDatagram(apr_socket_t* socket, const void* data, std::size_t size, const apr_sockaddr_t* to,
                             std::size_t& sent) noexcept;

/// The Address of a sockaddr that the system wrote into `raw.sa` (an
/// IPv4-mapped IPv6 sender reads as IPv4); empty for another family.
Address senderAddress(const apr_sockaddr_t& raw) noexcept;

/// Checks a destination and builds its sockaddr in `target` (zeroed by
/// the caller): Errc::no_address for an empty one, port_out_of_range,
/// std::errc::invalid_argument for a host that is not numeric.
std::error_code datagramTarget(const Address& to, apr_sockaddr_t& target) noexcept;

/// Opens a non-blocking UDP socket of `family` in a fresh pool.
std::unique_ptr<SocketState> openDatagramSocket(AddressFamily family, std::error_code& ec);

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_DATAGRAM_IO_H
