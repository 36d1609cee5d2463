// SPDX-License-Identifier: Apache-2.0
// A UDP socket with blocking, timeout-bounded calls.
#ifndef EVCHAN_UDP_SOCKET_H
#define EVCHAN_UDP_SOCKET_H

#include <cstddef>
#include <memory>
#include <system_error>

#include <evchan/address.h>
#include <evchan/duration.h>
#include <evchan/endpoint.h>
#include <evchan/export.h>
#include <evchan/tcp_socket.h>  // detail::SocketStateSlot, shared with TcpSocket

namespace evchan {

namespace detail {
struct UdpSocketAccess;
}

/// A UDP socket: datagrams to and from any peer (sendTo(), receiveFrom()),
/// or, once connect()ed, to and from one fixed peer (send(), receive()).
/// Move-only; the destructor closes it.
///
/// Every call comes in two forms: one throws evchan::SystemError (naming
/// the operation and the peer), the other takes an std::error_code& and is
/// noexcept.  Blocking calls wait at most timeout() and then fail with
/// std::errc::timed_out.  Inside a task a wait suspends the task (the
/// worker thread runs other tasks); on a plain thread it blocks the thread.
///
/// A datagram longer than the receive buffer is never cut silently: the
/// call delivers the first bytes (as many as fit) and reports
/// std::errc::message_size; the rest of that datagram is gone.  A datagram
/// too long to send (over 65,507 bytes on IPv4) fails with message_size.
/// On a connected socket an ICMP "port unreachable" from the peer fails a
/// later send() or receive() with std::errc::connection_refused.
///
/// Thread safety: a datagram is never cut or mixed with another: each send
/// hands its datagram to the system whole, in one call, and each receive
/// takes one whole datagram.  So several threads and tasks may send on one
/// socket at once, and several may receive at once (each datagram goes to
/// one of them) while others send.  Tasks of one channel take turns in each
/// direction, as at TcpListener's accept(): a receive while another task of
/// the channel waits to receive waits behind it, in the order they came,
/// within its own timeout; so does a send that finds the send buffer full
/// while another task of the channel waits to send (a send that finds room
/// goes out at once).  cancel() and close() may be called from any thread
/// at any time, with TcpSocket's guarantees (cancel() ends the calls
/// waiting, with operation_canceled; close() also refuses later calls with
/// Errc::not_open and waits for the cancelled calls to return before the
/// descriptor goes).  The options, addresses and timeout may be set and
/// read concurrently with each other and with the other calls; bind() and
/// connect() must not race any call but cancel() and close() (connect()
/// changes the peer that error messages name).
class EVCHAN_API UdpSocket {
 public:
  /// A closed socket; every call on it fails with Errc::not_open.
  UdpSocket() noexcept;
  /// Closes the socket if open (must not race with other calls on it).
  ~UdpSocket();
  /// Takes over `other`'s socket; `other` is left closed.
  UdpSocket(UdpSocket&& other) noexcept;
  /// Closes this socket, then takes over `other`'s; `other` is left closed.
  UdpSocket& operator=(UdpSocket&& other) noexcept;
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  ///@{
  /// Opens an unbound socket of `family` (IPv4 or IPv6; Unspecified is
  /// std::errc::invalid_argument).  The first send binds it to a port the
  /// system picks.  The error form returns a closed socket.
  static UdpSocket open(AddressFamily family);
  static UdpSocket open(AddressFamily family, std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// Binds the socket to a local address (port 0: any free one).  Errors:
  /// Errc::not_open, Errc::port_out_of_range, address_in_use, the family
  /// not matching the socket's.
  void bind(const Address& local);
  void bind(const Address& local, std::error_code& ec) noexcept;
  ///@}
  ///@{
  /// Binds to the first address of `local` (resolved for the socket's
  /// family; a numeric host needs no lookup) that the system accepts.
  void bind(const Endpoint& local);
  void bind(const Endpoint& local, std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// Fixes the peer: send() and receive() then work, only datagrams from
  /// `peer` are received, and ICMP errors from it are reported.  Sends no
  /// packet.  May be called again to change the peer.
  void connect(const Address& peer);
  void connect(const Address& peer, std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// Sends one datagram of `size` bytes (zero is an empty datagram) to
  /// `to`.  Returns the bytes sent (all of them).  Waits while the send
  /// buffer is full.  Errc::null_buffer for a null buffer with a non-zero
  /// size; Errc::no_address for an empty `to`.
  std::size_t sendTo(const void* buffer, std::size_t size, const Address& to);
  std::size_t sendTo(const void* buffer, std::size_t size, const Address& to, std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// Receives one datagram into `buffer`; `from` receives its sender.
  /// Waits until one arrives.  Returns its size; when it was longer than
  /// `size`, returns `size` (the bytes delivered) and the error form sets
  /// `ec` to std::errc::message_size (the throwing form throws, the first
  /// `size` bytes and `from` set all the same).  Other errors return 0.
  std::size_t receiveFrom(void* buffer, std::size_t size, Address& from);
  std::size_t receiveFrom(void* buffer, std::size_t size, Address& from, std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// send() and receive(): as sendTo() and receiveFrom() with the peer
  /// connect() fixed; without one, std::errc::not_connected (send) or
  /// datagrams from anyone (receive).
  std::size_t send(const void* buffer, std::size_t size);
  std::size_t send(const void* buffer, std::size_t size, std::error_code& ec) noexcept;
  std::size_t receive(void* buffer, std::size_t size);
  std::size_t receive(void* buffer, std::size_t size, std::error_code& ec) noexcept;
  ///@}

  /// Ends, with std::errc::operation_canceled, every call waiting on this
  /// socket in another thread or task (and every call under way that is
  /// about to wait), without closing it.  Harmless on a closed socket.
  void cancel() noexcept;
  /// Closes the socket; calls waiting on it end first (operation_canceled),
  /// see "Thread safety" above.  Idempotent.
  void close() noexcept;
  /// True until close() (or a move from this object).
  bool isOpen() const noexcept;

  ///@{
  /// The time each blocking call may wait; kInfiniteTimeout (the default)
  /// waits forever, zero fails at once with timed_out when it would block.
  /// A negative timeout is Errc::negative_timeout; Errc::not_open on a
  /// closed socket.
  void setTimeout(Duration timeout);
  void setTimeout(Duration timeout, std::error_code& ec) noexcept;
  ///@}
  /// The time each blocking call may wait; kInfiniteTimeout when closed.
  Duration timeout() const noexcept;

  ///@{
  /// SO_BROADCAST: allows sending to a broadcast address.
  void setBroadcast(bool on);
  void setBroadcast(bool on, std::error_code& ec) noexcept;
  ///@}
  ///@{
  /// SO_REUSEADDR, before bind(): lets several sockets bind the same
  /// multicast group and port.
  void setReuseAddress(bool on);
  void setReuseAddress(bool on, std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// Joins the multicast `group` (IPv4 or IPv6, the socket's family) on the
  /// interface with address `interfaceAddress` (empty: the system's
  /// choice).  leaveGroup() leaves it again.
  void joinGroup(const Address& group, const Address& interfaceAddress = Address());
  void joinGroup(const Address& group, const Address& interfaceAddress, std::error_code& ec) noexcept;
  void leaveGroup(const Address& group, const Address& interfaceAddress = Address());
  void leaveGroup(const Address& group, const Address& interfaceAddress, std::error_code& ec) noexcept;
  ///@}
  ///@{
  /// Whether this host's own members of a group receive what this socket
  /// sends to it (IP_MULTICAST_LOOP; on by default).
  void setMulticastLoopback(bool on);
  void setMulticastLoopback(bool on, std::error_code& ec) noexcept;
  ///@}
  ///@{
  /// The interface multicast datagrams leave by, named by its address
  /// (IPv4: IP_MULTICAST_IF; IPv6: the interface owning the address).
  void setMulticastInterface(const Address& interfaceAddress);
  void setMulticastInterface(const Address& interfaceAddress, std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// The local address (after bind() or the first send), and the peer
  /// fixed by connect().  Errc::not_open on a closed socket; the error form
  /// then returns an empty Address.
  Address localAddress() const;
  Address localAddress(std::error_code& ec) const noexcept;
  Address peerAddress() const;
  Address peerAddress(std::error_code& ec) const noexcept;
  ///@}

 private:
  friend struct detail::UdpSocketAccess;
  explicit UdpSocket(std::unique_ptr<detail::SocketState> state) noexcept;

  detail::SocketStateSlot state_;
};

}  // namespace evchan

#endif  // EVCHAN_UDP_SOCKET_H
