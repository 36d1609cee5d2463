// SPDX-License-Identifier: Apache-2.0
// A byte stream between two processes on one machine through shared
// memory, with the stream interface of TcpSocket (Linux only).
//
// Design, in short (src/linux/shm_segment.h has the details):
//  * Segment: one sealed memfd per connection, made by the connecting
//    side: a 4 KiB header (magic, version, sizes, two sets of ring
//    indices) followed by two single-producer single-consumer byte rings,
//    one per direction.  Indices are 64-bit running byte counts in
//    lock-free std::atomic<uint64_t>, stored and loaded sequentially
//    consistent: release/acquire orders the data, and the sleep handshake
//    below also needs each side's store ordered before its next load.
//  * Connecting: ShmListener listens on an AF_UNIX stream socket (a path,
//    or an abstract name written "@name").  ShmStream::connect() connects
//    to it and passes the memfd and one end of a fresh socketpair with
//    SCM_RIGHTS; accept() validates them and maps the segment.  Both Unix
//    sockets stay open for the connection's life.
//  * Wake-ups: a side that finds its ring empty (or full) spins briefly,
//    then publishes a "waiting" flag in the segment, re-checks the ring
//    and sleeps until one byte arrives on a Unix socket; the other side
//    sends that byte only when it finds the flag set.  The Unix socket is
//    the doorbell (rather than an eventfd) because it is also what reports
//    the peer's death (end of file when its process exits), so one
//    readiness wait covers both, and because the event channel can wait
//    for it inside a task (a ReadEvent), suspending the task, not the
//    worker.
//  * Peer death: the doorbells read end of file.  A peer that closed the
//    stream set a "closed" flag first, which turns that into
//    Errc::end_of_stream (after the data it wrote); without the flag it
//    is std::errc::connection_reset.
//  * A hostile or buggy peer: every index read from the segment is checked
//    (running counts never go backwards and never claim more than the
//    ring's capacity, which is kept privately after accept); a violation
//    is std::errc::protocol_error and the stream stays unusable.  accept()
//    refuses a segment that is not a memfd sealed against shrinking and
//    growing (a peer could otherwise truncate it under us: SIGBUS), whose
//    header or size is inconsistent, or that came without the expected
//    descriptors: std::errc::bad_message, the listener stays usable.
//    The same for a space doorbell that is not the far end of a
//    socketpair the client made and holds (see ShmListener::accept()).
//  * A hostile or unlucky client cannot stall the listener: handshakes
//    run concurrently, each with its own patience; and only the users the
//    listener allows may connect (see ShmListener).
//
// This header includes no OS header; it is installed on Linux builds only.
#ifndef EVCHAN_SHM_STREAM_H
#define EVCHAN_SHM_STREAM_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include <evchan/duration.h>
#include <evchan/export.h>
#include <evchan/stream.h>

namespace evchan {

namespace detail {
struct ShmConnection;
class ShmGate;
struct ShmListenerState;
}  // namespace detail

/// Free room of a ShmStream's ring, lent by ShmStream::writeView() to fill
/// and commit().
struct EVCHAN_API ShmRoom {
  /// First byte of the room; null when `size` is 0.
  void* data = nullptr;
  /// Length of the room in bytes.
  std::size_t size = 0;
};

/// One end of a shared-memory connection.  Move-only; the destructor
/// closes it.
///
/// The calls mirror TcpSocket's stream calls: a throwing form (throws
/// evchan::SystemError naming the operation and the endpoint's name) and a
/// noexcept form taking std::error_code&.  Each blocking step waits at
/// most timeout(), then fails with std::errc::timed_out.  Inside a task a
/// wait suspends the task, not the worker thread.  The peer closing the
/// stream is Errc::end_of_stream; the peer process dying without closing
/// it is std::errc::connection_reset; writing after the peer closed its
/// end is std::errc::broken_pipe.  Data the peer corrupted in the shared
/// header is std::errc::protocol_error, after which every call fails.
///
/// Thread safety: one thread (or task) may read while another writes.
/// Two reads at once, or two writes, are refused: the call that finds
/// another of its direction inside (readSome(), readView(), consume(),
/// the loops over them; writeSome(), writeView(), commit(), writeAll())
/// fails with Errc::socket_busy, since each direction is a ring with one
/// reader and one writer.  Calls made one after the other from different
/// threads are fine.
/// cancel() may be called from any thread or task while others are inside
/// a read or a write: it ends the calls under way that wait (sleeping for
/// the peer, or about to) with std::errc::operation_canceled, as
/// TcpSocket::cancel() does, and leaves the stream open; a call that
/// starts after it is not affected.  close() may be called from any thread
/// or task too: it ends the calls under way as cancel() does, makes later
/// ones fail with Errc::not_open, waits until the calls it ended have left
/// (a task yields meanwhile) and only then unmaps the rings; from an event
/// callback it blocks the worker meanwhile, with TcpSocket's limit (see
/// StreamSocket: a pool at maxThreads, a task of the channel inside a call).
/// shutdownWrite(), setTimeout() and the getters are safe at any time.
/// The destructor and the moves are not: nothing else may use the object
/// while it is destroyed or moved (close() from another thread first, then
/// destroy it once every user has returned).
/// As a TcpSocket, a stream may wait in tasks of one channel and later of
/// another.  The views readView() and writeView() lend are the exception:
/// close() does not wait for them (see there).
class EVCHAN_API ShmStream : public Stream {
 public:
  /// The ring size per direction that connect() uses by default.
  static constexpr std::size_t kDefaultRingSize = std::size_t{1} << 20;

  /// A closed stream; every call on it fails with Errc::not_open.
  ShmStream() noexcept;
  /// Closes the stream if open.
  ~ShmStream();
  /// Takes over `other`'s connection; `other` is left closed.
  ShmStream(ShmStream&& other) noexcept;
  /// Closes this stream, then takes over `other`'s; `other` is left closed.
  ShmStream& operator=(ShmStream&& other) noexcept;
  ShmStream(const ShmStream&) = delete;
  ShmStream& operator=(const ShmStream&) = delete;

  ///@{
  /// Connects to the ShmListener on `name` (a filesystem path, or
  /// "@name" for Linux's abstract socket namespace) and creates the
  /// shared segment with rings of `ringSize` bytes each (a power of two
  /// from 4 KiB to 1 GiB, else std::errc::invalid_argument).  Like a TCP
  /// connect, it completes once the
  /// listener's socket queued the connection, before accept(); data
  /// written meanwhile waits in the ring.  Nobody listening on `name` is
  /// std::errc::connection_refused (no_such_file_or_directory for a path
  /// that does not exist); `timeout` bounds the call.
  static ShmStream connect(const std::string& name, Duration timeout = kInfiniteTimeout);
  static ShmStream connect(const std::string& name, Duration timeout, std::error_code& ec) noexcept;
  static ShmStream connect(const std::string& name, Duration timeout, std::size_t ringSize,
                           std::error_code& ec) noexcept;
  ///@}

  /// Copies what is available, at least one byte, at most `size`; waits if
  /// nothing is.  A zero `size` returns 0 at once.  Returns the byte count;
  /// 0 with `ec` set on error.  readExactly() and writeAll() come from
  /// Stream.
  using Stream::readSome;
  std::size_t readSome(void* buffer, std::size_t size, std::error_code& ec) noexcept override;

  /// Copies what fits in the ring, at least one byte, at most `size`;
  /// waits while the ring is full.
  using Stream::writeSome;
  std::size_t writeSome(const void* buffer, std::size_t size, std::error_code& ec) noexcept override;

  ///@{
  /// Reads in place, without a copy: waits as readSome() does until at
  /// least one byte is available, then returns the available bytes where
  /// they lie in the shared ring, at most `maxSize`, in one piece (up to
  /// the ring's end when they wrap around it: the next view starts at the
  /// ring's beginning).  Nothing is consumed until consume(); a later
  /// readView() or readSome() starts at the same byte again.  Empty, with
  /// `ec` set, on the errors of readSome(); a zero `maxSize` returns an
  /// empty view at once.  The view is valid until consume() or the next
  /// read, and only while the stream stays open: close() from another
  /// thread unmaps the ring without waiting for views (it waits only for
  /// calls under way).  The ring is shared with the peer process, which
  /// could change the bytes while you read them if it broke the protocol:
  /// copy what you validate before acting on it.
  ConstBuffer readView(std::size_t maxSize, std::error_code& ec) noexcept;
  ConstBuffer readView(std::size_t maxSize);
  ///@}
  ///@{
  /// Hands the first `n` bytes of the last readView() back to the writer
  /// (0: none; the view ends either way).  More than that view, or no view
  /// since the last read, is std::errc::invalid_argument and consumes
  /// nothing; Errc::not_open once closed.
  void consume(std::size_t n, std::error_code& ec) noexcept;
  void consume(std::size_t n);
  ///@}

  ///@{
  /// Writes in place, without a copy: waits as writeSome() does until
  /// the ring has room, then lends free room of the ring, at most
  /// `maxSize` bytes, in one piece (up to the ring's end), to fill and
  /// then commit().  Nothing is sent until then; a later writeView() or
  /// writeSome() starts at the same place.  Empty, with `ec` set, on the
  /// errors of writeSome(); a zero `maxSize` returns empty room at once.
  /// Valid as long as a readView() is (see there).
  ShmRoom writeView(std::size_t maxSize, std::error_code& ec) noexcept;
  ShmRoom writeView(std::size_t maxSize);
  ///@}
  ///@{
  /// Sends the first `n` bytes of the last writeView()'s room (0: none;
  /// the room ends either way).  More than that room, or no room since the
  /// last write, is std::errc::invalid_argument and sends nothing;
  /// Errc::not_open once closed.
  void commit(std::size_t n, std::error_code& ec) noexcept;
  void commit(std::size_t n);
  ///@}

  ///@{
  /// The peer reads end_of_stream after the data already written; this
  /// side can still read.  Later writes fail with broken_pipe, and so does
  /// a write of this stream under way on another thread or task (one
  /// waiting for room in the ring ends at once); the end goes out after
  /// that write's bytes, never before them.
  void shutdownWrite();
  void shutdownWrite(std::error_code& ec) noexcept;
  ///@}

  /// Ends, with std::errc::operation_canceled, every read or write of this
  /// stream waiting in another thread or task (and every one under way
  /// that is about to wait), without closing the stream.  Harmless when
  /// nothing waits, or when the stream is closed.
  void cancel() noexcept;
  /// Closes the stream (the peer reads end_of_stream after the data
  /// written, and its writes fail with broken_pipe), first ending the calls
  /// under way on other threads and tasks (see "Thread safety").
  /// Idempotent.
  void close() noexcept override;
  /// True until close() (or a move from this object).
  bool isOpen() const noexcept override;
  std::string peerName() const override;

  ///@{
  /// The time each blocking step may take; kInfiniteTimeout (the default)
  /// waits forever, zero fails at once with timed_out when the call would
  /// wait.  A negative timeout is Errc::negative_timeout.
  void setTimeout(Duration timeout);
  void setTimeout(Duration timeout, std::error_code& ec) noexcept;
  ///@}
  /// The time each blocking step may take (see setTimeout());
  /// kInfiniteTimeout when closed.
  Duration timeout() const noexcept;

  /// The bytes each direction's ring holds; 0 when closed.
  std::size_t ringSize() const noexcept;

 protected:
  ///@{
  /// cancel() reaches every step of readExactly() and writeAll() (see
  /// Stream::cancelMark()).
  CancelMark cancelMark(bool writing) const noexcept override;
  std::size_t readSomeSince(CancelMark mark, void* buffer, std::size_t size, std::error_code& ec) noexcept override;
  std::size_t writeSomeSince(CancelMark mark, const ConstBuffer* buffers, std::size_t count,
                             std::error_code& ec) noexcept override;
  ///@}

 private:
  friend class ShmListener;
  explicit ShmStream(std::unique_ptr<detail::ShmConnection> state) noexcept;
  // The connection and the calls holding it (null: closed before it was
  // opened, or moved from).
  std::unique_ptr<detail::ShmGate> gate_;
};

/// How a ShmListener listens, and whom it lets in (see ShmListener).
struct EVCHAN_API ShmListenerOptions {
  /// The kernel's queue of connections not yet accepted.
  int backlog = 128;
  /// Clients running as this user (effective uid) may connect.  Unset, the
  /// default: the effective uid of the listening process at listen().
  std::optional<std::uint32_t> allowedUid;
  /// Clients whose effective gid is this may connect too, whatever their
  /// user (supplementary groups do not count: the kernel records only the
  /// primary group).  Unset, the default: no group is let in as such.
  std::optional<std::uint32_t> allowedGid;
  /// Any local user may connect (no credential check): for a path name in a
  /// directory whose permissions already keep out whom they should.
  bool allowAnyUser = false;
};

/// Listens for ShmStream connections on a name.  Move-only; the destructor
/// closes it (and removes the socket file of a path name it created).
/// Thread safety: calls on one listener must be serialised.
///
/// The socket file: listen() on a path creates it.  close() (and the
/// destructor) removes the file it created, if the path still names that
/// file (the same device and inode); a file put there since, such as the
/// socket of a listener started after this one's file was removed, is
/// left alone, as UnixListener leaves it.  An abstract name has no file.
///
/// Access rule: the kernel records the user and group of every connecting
/// process (SO_PEERCRED), and accept() lets a client in only when its
/// effective uid is ShmListenerOptions::allowedUid (by default the
/// listener's own), its effective gid is allowedGid, or allowAnyUser is
/// set; any other client is refused with std::errc::permission_denied
/// before it is read from.  Root is not special: list uid 0 to let it in.
/// An abstract name ("@name") has no other protection: any local user can
/// connect to it, which this rule answers.  A path name is a socket file,
/// created with the process's umask; connecting needs write permission on
/// it and search permission on its directories, checked by the kernel
/// before the rule above.
class EVCHAN_API ShmListener {
 public:
  /// A closed listener; every call on it fails with Errc::not_open.
  ShmListener() noexcept;
  /// Closes the listener if open (see close()).
  ~ShmListener();
  /// Takes over `other`'s socket; `other` is left closed.
  ShmListener(ShmListener&& other) noexcept;
  /// Closes this listener, then takes over `other`'s; `other` is left closed.
  ShmListener& operator=(ShmListener&& other) noexcept;
  ShmListener(const ShmListener&) = delete;
  ShmListener& operator=(const ShmListener&) = delete;

  ///@{
  /// Listens on `name`: a filesystem path, or "@name" for the abstract
  /// namespace.  A path name is taken as UnixListener::listen() takes it:
  /// the socket file of a listener that is gone (a connect to it is
  /// refused) is removed and the path listened on again; a path where a
  /// socket is listening is std::errc::address_in_use (that listener's
  /// accept() sees the probe as a connection that hangs up at once, and
  /// drops it without an error); a file that is not a socket is
  /// std::errc::file_exists and is never removed.  An abstract name in
  /// use is address_in_use.  An empty name is Errc::bad_endpoint;
  /// one too long for a Unix socket address is
  /// std::errc::filename_too_long.
  /// The options say whom it lets in (by default, its own user only).
  static ShmListener listen(const std::string& name, int backlog = 128);
  static ShmListener listen(const std::string& name, int backlog, std::error_code& ec) noexcept;
  static ShmListener listen(const std::string& name, const ShmListenerOptions& options);
  static ShmListener listen(const std::string& name, const ShmListenerOptions& options,
                            std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// Waits (at most timeout()) for a client to complete its handshake, and
  /// returns the first that does.  Handshakes run concurrently: the
  /// listener keeps the connections whose hello has not come yet (up to
  /// 64, the oldest giving way beyond) and waits for all of them and new
  /// ones together, so a slow or silent client delays nobody else.  Each
  /// client has 2 seconds after accept() first sees it to send its hello;
  /// those pending when accept() returns are kept for the next call.
  ///
  /// A connection that hangs up before sending a byte never began a
  /// handshake (a listen() probing whether this name is in use, a health
  /// check): it is dropped without an error, and accept() goes on waiting.
  /// Errors that end one client's handshake (that connection is dropped;
  /// the listener stays usable, and a loop simply calls accept() again):
  /// std::errc::permission_denied for a client the access rule refuses;
  /// std::errc::bad_message for one that sent a bad or partial hello or
  /// segment, no hello within its 2 seconds, or a space doorbell that is not the far
  /// end of an AF_UNIX stream socketpair made by the client's own process
  /// (so that its death reads end of file here: a listening, unconnected,
  /// named or foreign socket is refused, and so, where the kernel can name
  /// a socket's peer (unix_diag), is the other half of a pair already
  /// passed to another connection of this process).  A process that hands
  /// its end of the pair to another process keeps the connection alive as
  /// long as that one lives: the kernel cannot tell the two apart.
  ///
  /// Inside a task the wait runs under evchan::blocking(): it holds its
  /// worker, and the pool starts a spare thread meanwhile.  It is a
  /// cancellation point all the same, as TcpListener::accept() is: the
  /// task's TaskHandle::cancel() and its channel's shutdown end it with
  /// std::errc::operation_canceled (Errc::channel_shut_down when called
  /// after the shutdown), and a this_task::DeadlineScope bounds it
  /// (std::errc::timed_out).
  ShmStream accept();
  ShmStream accept(std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// The time accept() may wait; as ShmStream::setTimeout.
  void setTimeout(Duration timeout);
  void setTimeout(Duration timeout, std::error_code& ec) noexcept;
  ///@}
  /// The time accept() may wait; kInfiniteTimeout by default.
  Duration timeout() const noexcept;

  /// The name given to listen(); empty when closed.
  const std::string& name() const noexcept;

  /// Stops listening, and removes the socket file it created (see above).
  /// Idempotent.
  void close() noexcept;
  /// False after close(), for a default-constructed or a moved-from listener.
  bool isOpen() const noexcept;

 private:
  std::unique_ptr<detail::ShmListenerState> state_;
};

}  // namespace evchan

#endif  // EVCHAN_SHM_STREAM_H
