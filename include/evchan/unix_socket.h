// SPDX-License-Identifier: Apache-2.0
// Unix-domain (AF_UNIX) stream sockets: UnixSocket, UnixListener and the
// UnixAcceptEvent of the channel model.  POSIX only.
#ifndef EVCHAN_UNIX_SOCKET_H
#define EVCHAN_UNIX_SOCKET_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>

#include <evchan/duration.h>
#include <evchan/export.h>
#include <evchan/socket_events.h>
#include <evchan/stream_socket.h>

namespace evchan {

/// Who is at the other end of a UnixSocket, as the kernel recorded it
/// when the connection was made (not when asked).
struct EVCHAN_API PeerCredentials {
  /// The peer's process id; -1 where the system does not tell it (the
  /// BSDs and macOS give only the user and group).
  std::int64_t pid = -1;
  /// The peer's effective user id.
  std::uint32_t uid = 0;
  /// The peer's effective group id.
  std::uint32_t gid = 0;
};

/// A connected Unix-domain stream socket: a StreamSocket (so a Stream:
/// readExactly(), writeAll(), BufferedReader and TLS work on it, and
/// ReadEvent and WriteEvent take it), plus peer credentials and descriptor
/// passing.  Move-only; the destructor closes it.
///
/// Names: a filesystem path ("/run/app.sock"), or on Linux "@name" for
/// the abstract namespace (no file; gone with the last socket bound to it;
/// elsewhere std::errc::address_family_not_supported).  An empty
/// name, "@" alone or a name with a NUL in it is Errc::bad_endpoint; one
/// longer than the system's sockaddr_un takes (107 bytes on Linux) is
/// std::errc::filename_too_long.
///
/// Reads, writes, cancel(), close(), the timeout, the error forms and the
/// thread-safety rules are StreamSocket's (see there).  Errors name the
/// socket's name (for an accepted socket, the listener's).
class EVCHAN_API UnixSocket : public StreamSocket {
 public:
  /// The most descriptors sendDescriptors() sends in one call.
  static constexpr std::size_t kMaxDescriptors = 253;

  /// A closed socket; every call on it fails with Errc::not_open.
  UnixSocket() noexcept;
  /// Closes the socket if open (must not race with other calls on it).
  ~UnixSocket() override;
  /// Takes over `other`'s connection; `other` is left closed.
  UnixSocket(UnixSocket&& other) noexcept;
  /// Closes this socket, then takes over `other`'s connection.
  UnixSocket& operator=(UnixSocket&& other) noexcept;
  UnixSocket(const UnixSocket&) = delete;
  UnixSocket& operator=(const UnixSocket&) = delete;

  ///@{
  /// Connects to the listener on `name` (a path or "@abstract").  Nobody
  /// listening is std::errc::connection_refused, no such path
  /// std::errc::no_such_file_or_directory; while the listener's backlog is
  /// full the call retries until `timeout` (then timed_out; a negative one
  /// is Errc::negative_timeout).  Inside a task those retries suspend the
  /// task.  The error form returns a closed socket.
  static UnixSocket connect(const std::string& name, Duration timeout = kInfiniteTimeout);
  static UnixSocket connect(const std::string& name, Duration timeout, std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// The peer's process, user and group ids (SO_PEERCRED; getpeereid()
  /// on the BSDs and macOS, without the pid).  Where the system has
  /// neither: std::errc::operation_not_supported.  Errc::not_open on a
  /// closed socket.  Safe from any thread.
  PeerCredentials peerCredentials() const;
  PeerCredentials peerCredentials(std::error_code& ec) const noexcept;
  ///@}

  ///@{
  /// Sends the descriptors `fds[0..count)` (1 to kMaxDescriptors, open
  /// ones) to the peer attached to the first of the `size` bytes at `data`
  /// (at least one byte: the kernel passes descriptors with data only).
  /// Returns how many bytes went, at least one (then the descriptors
  /// went too: the peer holds its own copies, and the caller may close
  /// its own); send the rest with writeAll().  Waits, at most timeout(),
  /// while the send buffer is full.  Bad arguments are
  /// std::errc::invalid_argument (a negative descriptor:
  /// bad_file_descriptor).
  ///
  /// Inside a task the wait suspends the task (a DescriptorSendEvent on
  /// the task's channel); its worker runs other tasks meanwhile.  cancel()
  /// and close() end it.  Meanwhile the socket's write slot is taken: a
  /// write in another task on the same channel gets Errc::socket_busy
  /// (one reader and one writer per socket, as for every call).
  std::size_t sendDescriptors(const void* data, std::size_t size, const int* fds, std::size_t count);
  std::size_t sendDescriptors(const void* data, std::size_t size, const int* fds, std::size_t count,
                              std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// Receives at most `size` bytes (at least one; waiting, at most
  /// timeout(), for them) and the descriptors the peer attached to them
  /// with sendDescriptors(), into `fds[0..capacity)`: `received` says how
  /// many (0 when these bytes carried none).  Received descriptors are
  /// close-on-exec and the caller's to close.  A read never goes past the
  /// end of the bytes that carried descriptors, so the two sides agree on
  /// where they are by what they write.  More descriptors than `capacity`,
  /// or more than the process could take (at its RLIMIT_NOFILE): all of
  /// them are closed and the call fails with std::errc::message_size (the
  /// bytes are consumed).
  /// A zero `size`, or a null `fds` with a non-zero `capacity`, is
  /// std::errc::invalid_argument; a null `data` is Errc::null_buffer.
  ///
  /// Bytes that carried descriptors, read by readSome() or a ReadEvent
  /// instead, lose them: the kernel closes them.
  ///
  /// Inside a task the wait suspends the task (a DescriptorReceiveEvent),
  /// as for sendDescriptors(); it holds the read slot meanwhile.
  std::size_t receiveDescriptors(void* data, std::size_t size, int* fds, std::size_t capacity,
                                 std::size_t& received);
  std::size_t receiveDescriptors(void* data, std::size_t size, int* fds, std::size_t capacity,
                                 std::size_t& received, std::error_code& ec) noexcept;
  ///@}

 private:
  friend class UnixListener;
  friend class UnixAcceptEvent;
  explicit UnixSocket(std::unique_ptr<detail::SocketState> state) noexcept;
};

/// A Unix-domain socket listening for connections.  Move-only; the
/// destructor closes it.  cancel(), close(), the timeout and the
/// thread-safety rules are StreamListener's (see there); accept() may be
/// called from several threads and tasks at once (tasks of one channel
/// take turns, as TcpListener's).
///
/// The socket file: listen() on a path creates it.  A path where a socket
/// file is left behind by a listener that is gone (a connect to it is
/// refused) is removed and used again; one where a socket listens is
/// std::errc::address_in_use (the check connects to it: that listener
/// accepts one connection that ends at once); a file that is not a socket is
/// std::errc::file_exists and is never removed.  (Between the check and
/// the removal another process may start listening there: two servers
/// racing for one path are not told apart.)  close() (and the destructor)
/// removes the file it created, if the path still names that file; a
/// file another listener put there since is left alone.  An abstract name
/// has no file.
class EVCHAN_API UnixListener : public StreamListener {
 public:
  /// A closed listener; every call on it fails with Errc::not_open.
  UnixListener() noexcept;
  /// Closes the listener if open (and removes its socket file).
  ~UnixListener() override;
  /// Takes over `other`'s socket; `other` is left closed.
  UnixListener(UnixListener&& other) noexcept;
  /// Closes this listener, then takes over `other`'s.
  UnixListener& operator=(UnixListener&& other) noexcept;
  UnixListener(const UnixListener&) = delete;
  UnixListener& operator=(const UnixListener&) = delete;

  ///@{
  /// Listens on `name` (a path or "@abstract", see UnixSocket); the
  /// stale-file rule above applies.  A negative `backlog` is
  /// std::errc::invalid_argument; a directory that does not exist
  /// no_such_file_or_directory, one not writable permission_denied.
  static UnixListener listen(const std::string& name, int backlog = 128);
  static UnixListener listen(const std::string& name, int backlog, std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// Waits for the next connection, at most timeout() (then timed_out).
  /// Inside a task the wait suspends the task (a UnixAcceptEvent).
  UnixSocket accept();
  UnixSocket accept(std::error_code& ec) noexcept;
  ///@}

  /// The name listened on; empty when closed.
  std::string name() const;
};

/// An AcceptEvent on a UnixListener: takeSocket() hands over a UnixSocket.
class EVCHAN_API UnixAcceptEvent : public AcceptEvent {
 public:
  /// An accept on `listener`, which must outlive the event.
  explicit UnixAcceptEvent(UnixListener& listener) noexcept : AcceptEvent(static_cast<StreamListener&>(listener)) {}

  /// The accepted connection (closed if the event failed); moves it out.
  UnixSocket takeSocket() noexcept;
};

}  // namespace evchan

#endif  // EVCHAN_UNIX_SOCKET_H
