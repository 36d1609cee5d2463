// SPDX-License-Identifier: Apache-2.0
// Events that pass file descriptors over a UnixSocket.  POSIX only.
#ifndef EVCHAN_DESCRIPTOR_EVENTS_H
#define EVCHAN_DESCRIPTOR_EVENTS_H

#include <cstddef>

#include <evchan/event.h>
#include <evchan/export.h>
#include <evchan/unix_socket.h>

namespace evchan {

namespace detail {
struct DescriptorEventAccess;
/// Bytes a descriptor event keeps for a completion backend (io_uring): the
/// message header, its one piece and the control message with up to
/// UnixSocket::kMaxDescriptors descriptors, which the kernel reads or fills
/// until the operation completes.
inline constexpr std::size_t kDescriptorScratchSize = 1280;
}  // namespace detail

/// Sends descriptors with bytes on a UnixSocket: what
/// UnixSocket::sendDescriptors() does, as an event.  The descriptors
/// `fds[0..count)` (1 to UnixSocket::kMaxDescriptors) go attached to the
/// first of the `size` bytes at `data` (at least one); on completion
/// bytesTransferred() says how many bytes went (at least one, and then the
/// descriptors went too: the caller may close its own).  Send the rest
/// with a WriteEvent.  Nothing is sent while the socket's send buffer is
/// full; the event waits for room.
///
/// post() refuses a closed socket (Errc::not_open), a null `data` or
/// `fds`, a zero size or count, more than kMaxDescriptors
/// (std::errc::invalid_argument) and a negative descriptor
/// (std::errc::bad_file_descriptor).  It takes the socket's write slot: one
/// send, WriteEvent or DescriptorSendEvent, may be pending per socket
/// (another is Errc::socket_busy).  Closing the socket cancels it
/// (operation_canceled).  Works on every POSIX backend (io_uring:
/// IORING_OP_SENDMSG).  `data` and `fds` must stay valid until the event is
/// handed back.
class EVCHAN_API DescriptorSendEvent : public Event {
 public:
  /// A send of `count` descriptors at `fds` with the `size` bytes at `data`.
  DescriptorSendEvent(UnixSocket& socket, const void* data, std::size_t size, const int* fds,
                      std::size_t count) noexcept
      : Event(Kind::DescriptorSend), socket_(&socket), data_(data), size_(size), fds_(fds), count_(count) {}

  /// Points the event at other bytes and descriptors before re-posting it.
  void set(const void* data, std::size_t size, const int* fds, std::size_t count) noexcept {
    data_ = data, size_ = size, fds_ = fds, count_ = count;
  }
  /// The socket sent on.
  UnixSocket& socket() const noexcept { return *socket_; }
  /// The bytes the descriptors go with.
  const void* data() const noexcept { return data_; }
  /// How many bytes at data().
  std::size_t size() const noexcept { return size_; }
  /// The descriptors sent.
  const int* descriptors() const noexcept { return fds_; }
  /// How many descriptors at descriptors().
  std::size_t descriptorCount() const noexcept { return count_; }
  /// The bytes sent (the descriptors went with the first); valid once the
  /// event completed without error.
  std::size_t bytesTransferred() const noexcept { return transferred_; }

 private:
  friend struct detail::DescriptorEventAccess;
  UnixSocket* socket_;
  const void* data_;
  std::size_t size_;
  const int* fds_;
  std::size_t count_;
  std::size_t transferred_ = 0;
  // Where a completion backend keeps the message while it is under way.
  alignas(16) unsigned char scratch_[detail::kDescriptorScratchSize];
};

/// Receives bytes and the descriptors sent with them on a UnixSocket: what
/// UnixSocket::receiveDescriptors() does, as an event.  On completion
/// bytesTransferred() is how many bytes arrived at `data` (at least one;
/// a read never goes past the end of the bytes that carried descriptors)
/// and descriptorsReceived() how many descriptors are at `fds` (0 when
/// these bytes carried none).  Received descriptors are close-on-exec and
/// the caller's to close.  More descriptors than `capacity` came, or the
/// process could not take them all (at its RLIMIT_NOFILE): all of them
/// are closed and the event completes with std::errc::message_size (the
/// bytes are consumed; bytesTransferred() counts them).  The peer closed:
/// Errc::end_of_stream.
///
/// post() refuses a closed socket (Errc::not_open), a null `data`
/// (Errc::null_buffer), a zero size, and a null `fds` with a non-zero
/// `capacity` (std::errc::invalid_argument).  It takes the socket's read
/// slot: one receive, ReadEvent or DescriptorReceiveEvent, may be pending
/// per socket.  Closing the socket cancels it (operation_canceled).  Works
/// on every POSIX backend (io_uring: IORING_OP_RECVMSG).  `data` and `fds`
/// must stay valid until the event is handed back.  Descriptors a
/// completed receive delivered are the caller's even when the event comes
/// back from a shutdown or a destroyed channel instead of getEvent():
/// close them.
class EVCHAN_API DescriptorReceiveEvent : public Event {
 public:
  /// A receive of at most `size` bytes into `data` and at most `capacity`
  /// descriptors into `fds`.
  DescriptorReceiveEvent(UnixSocket& socket, void* data, std::size_t size, int* fds, std::size_t capacity) noexcept
      : Event(Kind::DescriptorReceive), socket_(&socket), data_(data), size_(size), fds_(fds), capacity_(capacity) {}

  /// Points the event at other buffers before re-posting it.
  void set(void* data, std::size_t size, int* fds, std::size_t capacity) noexcept {
    data_ = data, size_ = size, fds_ = fds, capacity_ = capacity;
  }
  /// The socket received from.
  UnixSocket& socket() const noexcept { return *socket_; }
  /// Where the bytes go.
  void* data() const noexcept { return data_; }
  /// The most bytes one completion delivers.
  std::size_t size() const noexcept { return size_; }
  /// Where the descriptors go.
  int* descriptors() const noexcept { return fds_; }
  /// The most descriptors one completion takes.
  std::size_t capacity() const noexcept { return capacity_; }
  /// The bytes delivered; valid once the event completed without error or
  /// with message_size.
  std::size_t bytesTransferred() const noexcept { return transferred_; }
  /// The descriptors delivered at descriptors(); valid once the event
  /// completed without error (0 otherwise).
  std::size_t descriptorsReceived() const noexcept { return received_; }

 private:
  friend struct detail::DescriptorEventAccess;
  UnixSocket* socket_;
  void* data_;
  std::size_t size_;
  int* fds_;
  std::size_t capacity_;
  std::size_t transferred_ = 0;
  std::size_t received_ = 0;
  // Where a completion backend keeps the message while it is under way.
  alignas(16) unsigned char scratch_[detail::kDescriptorScratchSize];
};

}  // namespace evchan

#endif  // EVCHAN_DESCRIPTOR_EVENTS_H
