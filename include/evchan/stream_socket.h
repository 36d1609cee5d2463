// SPDX-License-Identifier: Apache-2.0
// StreamSocket and StreamListener: what every connected stream socket (TCP,
// Unix-domain) and every listener has in common, and what the events of
// the channel model (ReadEvent, WriteEvent, AcceptEvent) work on.
#ifndef EVCHAN_STREAM_SOCKET_H
#define EVCHAN_STREAM_SOCKET_H

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <system_error>

#include <evchan/buffer.h>
#include <evchan/duration.h>
#include <evchan/export.h>
#include <evchan/stream.h>

namespace evchan {

namespace detail {
struct SocketState;
struct SocketAccess;
class SocketPin;

/// What a StreamSocket or StreamListener owns: its SocketState, which close()
/// may destroy while an event channel's post() on another thread (an event
/// callback re-posting, say) is using it.  post() pins the state for the
/// few steps it needs it, never blocking meanwhile; close() unhooks the
/// state, so that later posts see the socket closed, and waits for the
/// pins already taken to go before it destroys the state.
class SocketStateSlot {
 public:
  SocketStateSlot() noexcept = default;
  explicit SocketStateSlot(std::unique_ptr<SocketState> state) noexcept;
  ~SocketStateSlot();
  SocketStateSlot(SocketStateSlot&& other) noexcept;
  SocketStateSlot& operator=(SocketStateSlot&& other) noexcept;
  SocketStateSlot(const SocketStateSlot&) = delete;
  SocketStateSlot& operator=(const SocketStateSlot&) = delete;

  /// Unpinned: only where nothing can close the socket meanwhile.
  SocketState* get() const noexcept { return state_.load(std::memory_order_acquire); }
  SocketState* operator->() const noexcept { return get(); }
  explicit operator bool() const noexcept { return get() != nullptr; }
  /// Destroys the state (once no pin holds it), then owns `replacement`.
  void reset(std::unique_ptr<SocketState> replacement = nullptr) noexcept;
  /// Unhooks the state and returns it once no pin holds it.
  std::unique_ptr<SocketState> take() noexcept;
  /// Every close() counts itself in (while pinned) and out: the one that
  /// closes after destroying the state, the others at once; those others,
  /// and a close() that finds the state gone, wait until closeUnderWay()
  /// is false, so that the object (the destructor closes) outlives the
  /// closing thread's last access to it.
  void enterClose() noexcept;
  void leaveClose() noexcept;
  bool closeUnderWay() const noexcept;

 private:
  friend class SocketPin;
  std::atomic<SocketState*> state_{nullptr};
  mutable std::atomic<unsigned> pins_{0};
  std::atomic<unsigned> closers_{0};
};
}  // namespace detail

/// A connected stream socket: the part TcpSocket and UnixSocket share, and
/// what ReadEvent and WriteEvent take.  Move-only (through the derived
/// classes); the destructor closes it.  It is never made directly: connect
/// or accept a TcpSocket or a UnixSocket.
///
/// Every blocking call comes in two forms: one throws evchan::SystemError
/// (naming the operation and the peer), the other takes an std::error_code&
/// and is noexcept.  Blocking calls wait at most timeout() for each step of
/// progress and then fail with std::errc::timed_out.  The peer closing the
/// stream is Errc::end_of_stream.  Writes never raise SIGPIPE: a write to a
/// closed connection fails with broken pipe or connection reset.  Inside a
/// task every wait suspends the task, never its worker thread; on a plain
/// thread it blocks the thread.
///
/// readExactly(), writeAll() and the throwing forms come from Stream.
///
/// Thread safety: one thread (or task) may read while another writes.
/// Two reads at once, or two writes, are not supported: in tasks of one
/// channel the second fails with Errc::socket_busy (the channel keeps one
/// read and one write pending per socket); on plain threads both go to
/// the kernel, which is safe, but how the bytes split between two readers,
/// or interleave between two writers, is not defined.  Serialise them.
/// cancel() and close() may be called from any thread or task at any time
/// while others are inside any call on the socket (except the destructor
/// and a move, which the caller serialises with every other use):
///  - cancel() ends every call waiting on the socket, and every call under
///    way that is about to wait, with std::errc::operation_canceled; the
///    socket stays open and the next call waits normally.  A call that
///    starts after cancel() returns is not affected, so a loop that must
///    stop sets its own flag before cancel(), or uses close().  readExactly()
///    and writeAll() count as one call from their start: a cancel() that
///    lands between two of their steps ends the next step's wait.  Data a
///    call already took is returned, not lost (readExactly() reports how
///    many bytes it read before operation_canceled).
///  - close() cancels the same way, makes every later call fail with
///    Errc::not_open, waits until the cancelled calls have returned (a
///    task calling it yields meanwhile; a thread blocks), then closes the
///    descriptor: a cancelled call never touches a descriptor the system
///    has since reused.  An event callback that calls it blocks its
///    worker, counted as blocked, while a task of that channel inside a
///    call on the socket returns on another worker: on a channel whose
///    pool is at Options::maxThreads (1, say) that never happens, and the
///    channel hangs.  Close such a socket from a task or another thread.  A close() that races another returns once the
///    other has finished, so the thread whose call a close() ended may
///    destroy the socket at once (its destructor closes, and waits).
///  - The other calls (options, addresses, timeout) may run concurrently
///    with each other and with close(); after it they report not_open.
/// Events on the socket: close() may run while events on it are posted
/// (or cancelled) on other threads, event callbacks re-posting them
/// included.  Each such event then either completes with
/// std::errc::operation_canceled or, when its post() comes after the
/// close, is refused with Errc::not_open; none is lost or left pending.
/// On io_uring an operation the kernel finished before the close took
/// effect completes with its result instead (its bytes, its descriptors),
/// as EventChannel::cancel() says.  cancel() ends the blocking calls only,
/// not events the application posted itself (EventChannel::cancel() does
/// that).
class EVCHAN_API StreamSocket : public Stream {
 public:
  /// Closes the socket if open (must not race with other calls on it).
  ~StreamSocket() override;
  StreamSocket(const StreamSocket&) = delete;
  StreamSocket& operator=(const StreamSocket&) = delete;

  /// Reads what is available, at least one byte, at most `size`; waits if
  /// nothing is.  A zero `size` returns 0 at once without waiting.
  /// Returns the byte count; 0 with `ec` set on error.
  using Stream::readSome;
  std::size_t readSome(void* buffer, std::size_t size, std::error_code& ec) noexcept override;

  /// Sends what the socket takes, at least one byte, at most `size`;
  /// waits while the send buffer is full.
  using Stream::writeSome;
  std::size_t writeSome(const void* buffer, std::size_t size, std::error_code& ec) noexcept override;
  /// Gather write (see Stream): sends from the pieces in order, as many
  /// as the system takes in one call (POSIX sendmsg, up to IOV_MAX
  /// pieces; Windows WSASend, up to 64), at least one byte; waits while
  /// the send buffer is full.  Inside a task the wait suspends the task
  /// (a WriteEvent over the pieces), never its worker thread.
  std::size_t writeSome(const ConstBuffer* buffers, std::size_t count, std::error_code& ec) noexcept override;

  ///@{
  /// Ends this side's sending: the peer reads end_of_stream after the data
  /// already sent; this side can still read.
  /// Errc::not_open on a closed socket.
  void shutdownWrite();
  void shutdownWrite(std::error_code& ec) noexcept;
  ///@}

  /// Ends, with std::errc::operation_canceled, every call waiting on this
  /// socket in another thread or task (and every call under way that is
  /// about to wait), without closing it.  Harmless when nothing waits, and
  /// on a closed socket.  See "Thread safety" above.
  void cancel() noexcept;
  /// Closes the socket and frees its resources; calls waiting on it in
  /// other threads or tasks end first (operation_canceled), see "Thread
  /// safety" above.  Idempotent.
  void close() noexcept override;
  /// True until close() (or a move from this object).
  bool isOpen() const noexcept override;
  /// The peer as errors name it (an address and port, a socket path);
  /// empty when closed.
  std::string peerName() const override;

  ///@{
  /// The time each blocking step may take; kInfiniteTimeout (the default)
  /// waits forever, zero fails at once with timed_out when the call would
  /// block.  A negative timeout is Errc::negative_timeout.
  /// Errc::not_open on a closed socket.
  void setTimeout(Duration timeout);
  void setTimeout(Duration timeout, std::error_code& ec) noexcept;
  ///@}
  /// The time each blocking step may take; kInfiniteTimeout when closed.
  Duration timeout() const noexcept;

 protected:
  ///@{
  /// cancel() reaches every step of readExactly() and writeAll() (see
  /// Stream::cancelMark()).
  CancelMark cancelMark(bool writing) const noexcept override;
  std::size_t readSomeSince(CancelMark mark, void* buffer, std::size_t size, std::error_code& ec) noexcept override;
  std::size_t writeSomeSince(CancelMark mark, const ConstBuffer* buffers, std::size_t count,
                             std::error_code& ec) noexcept override;
  ///@}

  /// A closed socket.
  StreamSocket() noexcept;
  /// A socket owning `state` (null: closed).
  explicit StreamSocket(std::unique_ptr<detail::SocketState> state) noexcept;
  /// Takes over `other`'s connection; `other` is left closed.
  StreamSocket(StreamSocket&& other) noexcept;
  /// Closes this socket, then takes over `other`'s connection.
  StreamSocket& operator=(StreamSocket&& other) noexcept;

  /// The connection's state (for the derived classes' own calls).
  detail::SocketStateSlot state_;

 private:
  friend struct detail::SocketAccess;
};

/// A listening socket: the part TcpListener and UnixListener share, and
/// what AcceptEvent takes.  Move-only (through the derived classes); the
/// destructor closes it.
///
/// Thread safety: cancel() and close() may be called from any thread or
/// task while others are inside accept() (or any other call but the
/// destructor and a move): cancel() ends the waiting accept() calls with
/// std::errc::operation_canceled and leaves the listener open; close()
/// ends them the same way, waits until they have returned and then closes
/// the descriptor; later calls fail with Errc::not_open.  close() may race
/// with the posting of AcceptEvents on the listener: they are cancelled or
/// refused with Errc::not_open.
class EVCHAN_API StreamListener {
 public:
  /// Closes the listener if open.
  virtual ~StreamListener();
  StreamListener(const StreamListener&) = delete;
  StreamListener& operator=(const StreamListener&) = delete;

  /// Ends, with std::errc::operation_canceled, every accept() waiting on
  /// this listener in another thread or task, without closing it.
  /// Harmless when nothing waits, and on a closed listener.
  void cancel() noexcept;
  /// Closes the listener; accept() calls waiting on it in other threads or
  /// tasks end first (operation_canceled).  Idempotent.
  void close() noexcept;
  /// False after close(), for a default-constructed or a moved-from listener.
  bool isOpen() const noexcept;

  ///@{
  /// The time accept() may wait; kInfiniteTimeout by default.
  /// A negative `timeout` is Errc::negative_timeout.
  void setTimeout(Duration timeout);
  void setTimeout(Duration timeout, std::error_code& ec) noexcept;
  ///@}
  /// The time accept() may wait; kInfiniteTimeout when closed.
  Duration timeout() const noexcept;

 protected:
  /// A closed listener.
  StreamListener() noexcept;
  /// Takes over `other`'s socket; `other` is left closed.
  StreamListener(StreamListener&& other) noexcept;
  /// Closes this listener, then takes over `other`'s.
  StreamListener& operator=(StreamListener&& other) noexcept;
  /// The name errors give the listener (its address or path).
  std::string listenerName() const;

  /// The listening socket's state (for the derived classes' accept()).
  detail::SocketStateSlot state_;

 private:
  friend struct detail::SocketAccess;
};

}  // namespace evchan

#endif  // EVCHAN_STREAM_SOCKET_H
