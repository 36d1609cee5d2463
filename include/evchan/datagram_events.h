// SPDX-License-Identifier: Apache-2.0
// Events that receive and send datagrams on a UdpSocket.
#ifndef EVCHAN_DATAGRAM_EVENTS_H
#define EVCHAN_DATAGRAM_EVENTS_H

#include <cstddef>

#include <evchan/address.h>
#include <evchan/event.h>
#include <evchan/export.h>
#include <evchan/udp_socket.h>

namespace evchan {

namespace detail {
struct DatagramEventAccess;
/// Bytes a datagram event keeps for a completion backend (io_uring): the
/// message header, its one piece and the peer's address, which the
/// kernel reads or fills until the operation completes.
inline constexpr std::size_t kDatagramScratchSize = 256;
}  // namespace detail

/// Receives one datagram from a UdpSocket into the buffer; on completion
/// bytesTransferred() is its size and peer() its sender.  A datagram
/// longer than size() delivers size() bytes and completes with
/// std::errc::message_size (peer() set too).  One receive (the socket's
/// read slot) may be pending per socket at a time: another is
/// Errc::socket_busy.  Closing the socket cancels it (operation_canceled).
/// On a connected socket an ICMP port unreachable completes it with
/// std::errc::connection_refused.  Works on every backend (io_uring:
/// IORING_OP_RECVMSG).
class EVCHAN_API DatagramReceiveEvent : public Event {
 public:
  /// A receive from `socket` into `size` bytes at `buffer`; both must stay
  /// valid until the event is handed back.
  DatagramReceiveEvent(UdpSocket& socket, void* buffer, std::size_t size) noexcept
      : Event(Kind::DatagramReceive), socket_(&socket), buffer_(buffer), size_(size) {}

  /// Points the event at another buffer before re-posting it.
  void setBuffer(void* buffer, std::size_t size) noexcept { buffer_ = buffer, size_ = size; }
  /// The socket received from.
  UdpSocket& socket() const noexcept { return *socket_; }
  /// Where the datagram goes.
  void* buffer() const noexcept { return buffer_; }
  /// The most bytes one datagram delivers.
  std::size_t size() const noexcept { return size_; }
  /// The bytes delivered; valid once the event completed without error or
  /// with message_size (0 before its first completion).
  std::size_t bytesTransferred() const noexcept { return transferred_; }
  /// The sender of the datagram; empty until a completion delivers one.
  const Address& peer() const noexcept { return peer_; }

 private:
  friend struct detail::DatagramEventAccess;
  UdpSocket* socket_;
  void* buffer_;
  std::size_t size_;
  std::size_t transferred_ = 0;
  Address peer_;
  // Where a completion backend keeps the operation's message header and
  // the peer's address while it is under way (DatagramEventAccess).
  unsigned char* scratchBytes() noexcept { return scratch_; }
  alignas(16) unsigned char scratch_[detail::kDatagramScratchSize];
};

/// Sends one datagram on a UdpSocket: to destination(), or, when that is
/// empty, to the peer the socket is connected to.  bytesTransferred() is
/// the size sent (all of it); a zero size sends an empty datagram.  One
/// send (the socket's write slot) may be pending per socket at a time.
/// post() refuses a null buffer with a non-zero size (Errc::null_buffer),
/// a closed socket (Errc::not_open), and a destination that is not a
/// numeric address with a port in range.  Works on every backend
/// (io_uring: IORING_OP_SENDMSG).
class EVCHAN_API DatagramSendEvent : public Event {
 public:
  /// A send of `size` bytes at `buffer` to the socket's connected peer.
  DatagramSendEvent(UdpSocket& socket, const void* buffer, std::size_t size) noexcept
      : Event(Kind::DatagramSend), socket_(&socket), buffer_(buffer), size_(size) {}
  /// A send of `size` bytes at `buffer` to `destination`.
  DatagramSendEvent(UdpSocket& socket, const void* buffer, std::size_t size, Address destination) noexcept
      : Event(Kind::DatagramSend),
        socket_(&socket),
        buffer_(buffer),
        size_(size),
        destination_(std::move(destination)) {}

  /// Points the event at another datagram before re-posting it.
  void setBuffer(const void* buffer, std::size_t size) noexcept { buffer_ = buffer, size_ = size; }
  /// Changes the destination before re-posting (empty: the connected peer).
  void setDestination(Address destination) noexcept { destination_ = std::move(destination); }
  /// The socket sent on.
  UdpSocket& socket() const noexcept { return *socket_; }
  /// The datagram's bytes.
  const void* buffer() const noexcept { return buffer_; }
  /// The datagram's size.
  std::size_t size() const noexcept { return size_; }
  /// Where it goes; empty for the connected peer.
  const Address& destination() const noexcept { return destination_; }
  /// The bytes sent; valid once the event completed without error.
  std::size_t bytesTransferred() const noexcept { return transferred_; }

 private:
  friend struct detail::DatagramEventAccess;
  UdpSocket* socket_;
  const void* buffer_;
  std::size_t size_;
  Address destination_;
  std::size_t transferred_ = 0;
  // Where a completion backend keeps the operation's message header and
  // the peer's address while it is under way (DatagramEventAccess).
  unsigned char* scratchBytes() noexcept { return scratch_; }
  alignas(16) unsigned char scratch_[detail::kDatagramScratchSize];
};

}  // namespace evchan

#endif  // EVCHAN_DATAGRAM_EVENTS_H
