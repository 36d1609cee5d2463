// Events that read, write, accept and connect sockets.
#ifndef EVCHAN_SOCKET_EVENTS_H
#define EVCHAN_SOCKET_EVENTS_H

#include <cstddef>

#include <evchan/address.h>
#include <evchan/event.h>
#include <evchan/export.h>
#include <evchan/tcp_listener.h>
#include <evchan/tcp_socket.h>

namespace evchan {

/// Reads at least one byte, at most size(), from a socket into the buffer.
/// On completion bytesTransferred() says how many; a short read is a
/// success.  The peer closing the stream is Errc::end_of_stream.  One read
/// (or accept) may be pending per socket at a time: another is
/// Errc::socket_busy.  Closing the socket cancels it (operation_canceled).
class EVCHAN_API ReadEvent : public Event {
 public:
  ReadEvent(TcpSocket& socket, void* buffer, std::size_t size) noexcept
      : Event(Kind::Read), socket_(&socket), buffer_(buffer), size_(size) {}

  /// Points the event at another buffer before re-posting it.
  void setBuffer(void* buffer, std::size_t size) noexcept { buffer_ = buffer, size_ = size; }
  TcpSocket& socket() const noexcept { return *socket_; }
  void* buffer() const noexcept { return buffer_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t bytesTransferred() const noexcept { return transferred_; }

 private:
  friend struct detail::EventAccess;
  TcpSocket* socket_;
  void* buffer_;
  std::size_t size_;
  std::size_t transferred_ = 0;
};

/// Writes at least one byte, at most size(), from the buffer to a socket;
/// bytesTransferred() says how many (post again for the rest).  Never
/// raises SIGPIPE.  One write may be pending per socket at a time.
class EVCHAN_API WriteEvent : public Event {
 public:
  WriteEvent(TcpSocket& socket, const void* buffer, std::size_t size) noexcept
      : Event(Kind::Write), socket_(&socket), buffer_(buffer), size_(size) {}

  void setBuffer(const void* buffer, std::size_t size) noexcept { buffer_ = buffer, size_ = size; }
  TcpSocket& socket() const noexcept { return *socket_; }
  const void* buffer() const noexcept { return buffer_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t bytesTransferred() const noexcept { return transferred_; }

 private:
  friend struct detail::EventAccess;
  TcpSocket* socket_;
  const void* buffer_;
  std::size_t size_;
  std::size_t transferred_ = 0;
};

/// Accepts one connection on a listener; takeSocket() hands it over.
class EVCHAN_API AcceptEvent : public Event {
 public:
  explicit AcceptEvent(TcpListener& listener) noexcept : Event(Kind::Accept), listener_(&listener) {}

  TcpListener& listener() const noexcept { return *listener_; }
  /// The accepted connection (closed if the event failed); moves it out.
  TcpSocket takeSocket() noexcept { return std::move(accepted_); }

 private:
  friend struct detail::EventAccess;
  TcpListener* listener_;
  TcpSocket accepted_;
};

/// Connects to a resolved address; takeSocket() hands the connection over.
class EVCHAN_API ConnectEvent : public Event {
 public:
  explicit ConnectEvent(Address address) noexcept : Event(Kind::Connect), address_(std::move(address)) {}

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
