// SPDX-License-Identifier: Apache-2.0
// Events that read, write, accept and connect sockets.
#ifndef EVCHAN_SOCKET_EVENTS_H
#define EVCHAN_SOCKET_EVENTS_H

#include <cstddef>

#include <evchan/address.h>
#include <evchan/buffer.h>
#include <evchan/event.h>
#include <evchan/export.h>
#include <evchan/tcp_listener.h>
#include <evchan/stream_socket.h>
#include <evchan/tcp_socket.h>

namespace evchan {

/// Reads at least one byte, at most size(), from a stream socket (a
/// TcpSocket, a UnixSocket) into the buffer.
/// On completion bytesTransferred() says how many; a short read is a
/// success.  The peer closing the stream is Errc::end_of_stream.  One read
/// (or accept) may be pending per socket at a time: another is
/// Errc::socket_busy.  Closing the socket cancels it (operation_canceled).
class EVCHAN_API ReadEvent : public Event {
 public:
  /// A read from `socket` into `size` bytes at `buffer`; both must stay
  /// valid until the event is handed back.
  ReadEvent(StreamSocket& socket, void* buffer, std::size_t size) noexcept
      : Event(Kind::Read), socket_(&socket), buffer_(buffer), size_(size) {}

  /// Points the event at another buffer before re-posting it.
  void setBuffer(void* buffer, std::size_t size) noexcept { buffer_ = buffer, size_ = size; }
  /// The socket read from.
  StreamSocket& socket() const noexcept { return *socket_; }
  /// Where the bytes go.
  void* buffer() const noexcept { return buffer_; }
  /// The most bytes one completion reads.
  std::size_t size() const noexcept { return size_; }
  /// The bytes read; valid once the event completed without error
  /// (0 before its first completion).
  std::size_t bytesTransferred() const noexcept { return transferred_; }

 private:
  friend struct detail::EventAccess;
  StreamSocket* socket_;
  void* buffer_;
  std::size_t size_;
  std::size_t transferred_ = 0;
};

/// Writes at least one byte, at most size(), to a stream socket; bytesTransferred()
/// says how many (post again for the rest).  Never raises SIGPIPE.  One
/// write may be pending per socket at a time.
///
/// The bytes come from one buffer, or from several pieces written in order
/// as one stream (a gather write: a ConstBuffer array, sent with one
/// system call where the system allows: sendmsg, io_uring's sendmsg,
/// WSASend).  A gather event completes like any write: bytesTransferred()
/// counts across the pieces and may end inside one; consumeBuffers() moves
/// the array past it for the re-post.  Empty pieces are skipped, and an
/// event with nothing to write completes at once with 0 bytes.  post()
/// refuses a null buffer with a non-zero size, a null array with a
/// non-zero count, or a piece with null data and a non-zero size, with
/// Errc::null_buffer.
///
/// The event keeps a pointer to the caller's array, not a copy: the array
/// and the bytes its pieces point to must stay valid and unchanged from
/// post() until the event is handed back (a completion backend's kernel
/// reads them until the send completes).  setBuffers() reads the pieces'
/// sizes when called: after changing the array, call it again before the
/// next post().
class EVCHAN_API WriteEvent : public Event {
 public:
  /// A write of `size` bytes at `buffer` to `socket`.
  WriteEvent(StreamSocket& socket, const void* buffer, std::size_t size) noexcept
      : Event(Kind::Write), socket_(&socket) {
    setBuffer(buffer, size);
  }
  /// Keeps WriteEvent(socket, nullptr, size) the one-buffer form.
  WriteEvent(StreamSocket& socket, std::nullptr_t, std::size_t size) noexcept
      : WriteEvent(socket, static_cast<const void*>(nullptr), size) {}
  /// A gather write of the pieces `buffers[0..count)`.
  WriteEvent(StreamSocket& socket, const ConstBuffer* buffers, std::size_t count) noexcept
      : Event(Kind::Write), socket_(&socket) {
    setBuffers(buffers, count);
  }

  /// Points the event at one buffer before re-posting it.
  void setBuffer(const void* buffer, std::size_t size) noexcept {
    one_ = ConstBuffer{buffer, size};
    buffers_ = &one_;
    count_ = 1;
    first_ = buffer;
    size_ = size;
  }
  /// Points the event at the pieces `buffers[0..count)` before re-posting it.
  void setBuffers(const ConstBuffer* buffers, std::size_t count) noexcept;

  /// The socket written to.
  StreamSocket& socket() const noexcept { return *socket_; }
  /// Where the first byte to write is: the one buffer, or the data of the
  /// first non-empty piece; null when there is nothing to write, and for
  /// pieces that post() refuses.
  const void* buffer() const noexcept { return first_; }
  /// The bytes to write: the buffer's size, or the pieces' total.
  std::size_t size() const noexcept { return size_; }
  ///@{
  /// The pieces (one, for the one-buffer form) and how many there are.
  const ConstBuffer* buffers() const noexcept { return buffers_; }
  std::size_t bufferCount() const noexcept { return count_; }
  ///@}
  /// The bytes written, counted across the pieces; valid once the event
  /// completed without error (0 before its first completion).
  std::size_t bytesTransferred() const noexcept { return transferred_; }

 private:
  friend struct detail::EventAccess;
  StreamSocket* socket_;
  ConstBuffer one_;             // the one-buffer form's piece (events never move)
  const ConstBuffer* buffers_;  // &one_, or the caller's array
  std::size_t count_;
  const void* first_;
  std::size_t size_;
  std::size_t transferred_ = 0;
};

/// Accepts one connection on a listener; takeSocket() hands it over.  On
/// a UnixListener use UnixAcceptEvent, whose takeSocket() gives a
/// UnixSocket.
class EVCHAN_API AcceptEvent : public Event {
 public:
  /// An accept on `listener`, which must outlive the event.
  explicit AcceptEvent(TcpListener& listener) noexcept : Event(Kind::Accept), listener_(&listener) {}

  /// The listener accepted on.
  StreamListener& listener() const noexcept { return *listener_; }
  /// The accepted connection (closed if the event failed); moves it out.
  TcpSocket takeSocket() noexcept { return std::move(accepted_); }

 protected:
  /// An accept on any stream listener (UnixAcceptEvent's).
  explicit AcceptEvent(StreamListener& listener) noexcept : Event(Kind::Accept), listener_(&listener) {}
  /// The accepted connection, for a derived event's takeSocket().
  TcpSocket& accepted() noexcept { return accepted_; }

 private:
  friend struct detail::EventAccess;
  StreamListener* listener_;
  TcpSocket accepted_;
};

/// Connects to a resolved address; takeSocket() hands the connection over.
class EVCHAN_API ConnectEvent : public Event {
 public:
  /// A connect to `address`; the event keeps its own copy.
  explicit ConnectEvent(Address address) noexcept : Event(Kind::Connect), address_(std::move(address)) {}

  /// The address connected to.
  const Address& address() const noexcept { return address_; }
  /// The connection (closed if the event failed); moves it out.
  TcpSocket takeSocket() noexcept { return std::move(connected_); }

 private:
  friend struct detail::EventAccess;
  Address address_;
  TcpSocket connected_;
};

}  // namespace evchan

#endif  // EVCHAN_SOCKET_EVENTS_H
