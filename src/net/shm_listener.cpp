// SPDX-License-Identifier: Apache-2.0
// ShmListener: accepts AF_UNIX connections and the segment each brings.
#include <evchan/shm_stream.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_set>
#include <vector>

#include <evchan/blocking.h>
#include <evchan/error.h>
#include <evchan/system_error.h>
#include <evchan/task.h>

#include "apr/fork_hooks.h"
#include "poller/deadline.h"
#include "linux/shm_connection.h"
#include "linux/unix_peer.h"
#include "posix/unix_socket.h"
#include "task/await.h"

namespace evchan {

using detail::Deadline;

namespace detail {

/// A connection accepted whose hello has not come yet.
struct PendingHandshake {
  int control;
  Deadline deadline;  // its own: it holds up nobody else
  bool readable;      // poll() saw something arrive
};

struct ShmListenerState {
  ~ShmListenerState() {
    for (const PendingHandshake& pending : handshakes) ::close(pending.control);
    if (wakeFd >= 0) ::close(wakeFd);
    ::close(fd);
    if (socketFile) removeSocketFileIfSame(name.c_str(), *socketFile);
  }

  int fd = -1;
  std::string name;
  // A path name's socket file as listen() created it; another put at the
  // path since is not ours to remove.  None for an abstract name.
  std::optional<SocketFileId> socketFile;
  Duration timeout = kInfiniteTimeout;
  uid_t allowedUid = 0;
  std::optional<gid_t> allowedGid;
  bool allowAnyUser = false;
  std::vector<PendingHandshake> handshakes;  // oldest first
  int wakeFd = -1;  // the eventfd that ends a task's wait (pollInTask()), made by its first
};

namespace {

// The space doorbells that this process's accepted connections hold, by
// socket inode.  Never destroyed: a stream may close during static
// destruction.  Its lock is free across a fork().
struct HeldDoorbells {
  std::mutex mutex;
  std::unordered_set<std::uint64_t> inodes;
};

HeldDoorbells& heldDoorbells();
void lockHeldDoorbells() { heldDoorbells().mutex.lock(); }
void unlockHeldDoorbells() { heldDoorbells().mutex.unlock(); }

HeldDoorbells& heldDoorbells() {
  static HeldDoorbells* const held = [] {
    auto* created = new HeldDoorbells;
    holdAcrossFork(&lockHeldDoorbells, &unlockHeldDoorbells);
    return created;
  }();
  return *held;
}

}  // namespace

bool claimDoorbell(std::uint64_t inode, std::uint64_t peerInode) noexcept {
  HeldDoorbells& held = heldDoorbells();
  std::lock_guard<std::mutex> lock(held.mutex);
  if (peerInode != 0 && held.inodes.count(peerInode) != 0) return false;
  return held.inodes.insert(inode).second;  // the same end passed twice: refused too
}

void releaseDoorbell(std::uint64_t inode) noexcept {
  HeldDoorbells& held = heldDoorbells();
  std::lock_guard<std::mutex> lock(held.mutex);
  held.inodes.erase(inode);
}

}  // namespace detail

namespace {

using Connection = std::unique_ptr<detail::ShmConnection>;

// A client that connected but sends nothing holds its own handshake open
// this long (documented in shm_stream.h), and nobody else's.
constexpr Duration kHelloPatience = std::chrono::seconds(2);
// Handshakes open at once; the oldest gives way to a newer one beyond.
constexpr std::size_t kMaxPendingHandshakes = 64;

std::error_code badMessage() { return std::make_error_code(std::errc::bad_message); }

// The access rule (see ShmListener in shm_stream.h), on the credentials
// the kernel recorded when the client connected.
bool mayConnect(const detail::ShmListenerState& state, int control) {
  detail::UnixPeerIds client;
  if (detail::unixPeerCredentials(control, client)) return false;
  return state.allowAnyUser || client.uid == state.allowedUid ||
         (state.allowedGid && client.gid == *state.allowedGid);
}

// The space doorbell must be the far end of a socketpair that the client
// made and holds the near end of: then its death (its last copy closing)
// reads end of file here.  A listening or unconnected socket never does,
// nor does a pair whose near end another process holds, or this one (the
// other half of a pair passed to another of our connections).
bool isClientsDoorbell(int bell, int control) {
  detail::UnixPeerIds client, maker;
  if (!detail::isSocketPairEnd(bell) || detail::unixPeerCredentials(control, client) ||
      detail::unixPeerCredentials(bell, maker) || maker.pid != client.pid || maker.uid != client.uid)
    return false;
  return detail::claimDoorbell(detail::socketInode(bell), detail::unixPeerInode(bell));
}

// The rest of the handshake once the hello came: the doorbell and the
// segment checked, the connection made.  Takes all three descriptors.
Connection completeHandshake(int control, const detail::ShmHello& hello, int memfd, int bell, const std::string& name,
                             std::error_code& ec) {
  if (!detail::validHello(hello) ||
      !isClientsDoorbell(bell, control)) {
    ::close(memfd);
    ::close(bell);
    ::close(control);
    ec = badMessage();
    return nullptr;
  }
  const std::uint64_t bellInode = detail::socketInode(bell);
  detail::Segment segment = detail::adoptSegment(memfd, ec);
  // The passed socket keeps the peer's flags; ours must not block.
  const int flags = ec ? 0 : fcntl(bell, F_GETFL);
  if (!ec && (flags < 0 || fcntl(bell, F_SETFL, flags | O_NONBLOCK) != 0))
    ec = std::error_code(errno, std::generic_category());
  if (ec) {
    detail::releaseDoorbell(bellInode);
    ::close(bell);
    ::close(control);
    detail::unmapSegment(segment);
    return nullptr;
  }
  Connection connection =
      detail::ShmConnection::make(segment, detail::ShmRole::Listening, control, bell, name, ec);
  if (connection) {
    connection->heldDoorbell = bellInode;
  } else {
    detail::releaseDoorbell(bellInode);
  }
  return connection;
}

// What tryHandshake() made of a connection.
enum class Handshake {
  pending,  // no hello yet: the caller keeps `control`
  ended,    // served, or refused with the reason in `ec`; `control` taken
  dropped,  // hung up before sending a byte: no client, no error; `control` closed
};

// Takes the client's hello if it has come, without waiting.  A connection
// closed before it sent anything never began a handshake: a probe (a
// UnixListener or ShmListener finding out whether this name is still
// listened on, a health check) is dropped without an error, so that it
// cannot fail the accept() of the live listener it reached.
Handshake tryHandshake(int control, const std::string& name, Connection& connection, std::error_code& ec) {
  detail::ShmHello hello = {};
  int fds[2];
  // A deadline already past: one look, timed_out when nothing is there.
  ec = detail::receiveWithDescriptors(control, &hello, sizeof hello, fds, 2, Deadline{});
  if (ec == std::errc::timed_out) {
    ec.clear();
    return Handshake::pending;
  }
  if (ec == Errc::end_of_stream) {
    ::close(control);
    ec.clear();
    return Handshake::dropped;
  }
  if (ec) {
    // A client that sent a bad hello, or failed while sending it.
    ::close(control);
    ec = badMessage();
    return Handshake::ended;
  }
  connection = completeHandshake(control, hello, fds[0], fds[1], name, ec);
  return Handshake::ended;
}

// Accepts what the kernel has queued: a client not allowed in is refused
// at once (permission_denied), one whose hello is there is served, one
// gone without a word is dropped, the others wait among the pending
// handshakes.  True once some handshake ended (as tryHandshake), false
// when the queue is empty.
bool acceptQueued(detail::ShmListenerState& state, Connection& connection, std::error_code& ec) {
  for (;;) {
    const int control = detail::acceptUnix(state.fd, ec);
    if (control < 0) {
      if (ec != std::errc::resource_unavailable_try_again) return true;  // EMFILE and such
      ec.clear();
      return false;
    }
    if (!mayConnect(state, control)) {
      ::close(control);
      ec = std::make_error_code(std::errc::permission_denied);
      return true;
    }
    const Handshake handshake = tryHandshake(control, state.name, connection, ec);
    if (handshake == Handshake::ended) return true;
    if (handshake == Handshake::dropped) continue;
    state.handshakes.push_back({control, detail::deadlineAfter(kHelloPatience), false});
    if (state.handshakes.size() > kMaxPendingHandshakes) {
      // A flood of silent clients: the oldest gives way.
      ::close(state.handshakes.front().control);
      state.handshakes.erase(state.handshakes.begin());
      ec = badMessage();
      return true;
    }
  }
}

// Ends one pending handshake that can end: one whose hello came, or whose
// patience ran out (bad_message); drops those gone without a word.  False
// if none ended.
bool finishPending(detail::ShmListenerState& state, Connection& connection, std::error_code& ec) {
  const Deadline now = detail::Clock::now();
  for (auto pending = state.handshakes.begin(); pending != state.handshakes.end();) {
    if (pending->readable) {
      pending->readable = false;
      const Handshake handshake = tryHandshake(pending->control, state.name, connection, ec);
      if (handshake == Handshake::ended) {
        state.handshakes.erase(pending);
        return true;
      }
      if (handshake == Handshake::dropped) {
        pending = state.handshakes.erase(pending);
        continue;
      }
    }
    if (now >= pending->deadline) {
      ::close(pending->control);
      state.handshakes.erase(pending);
      ec = badMessage();
      return true;
    }
    ++pending;
  }
  return false;
}

// A task's wait in accept(), which its cancel() and its channel's shutdown
// end by writing to the listener's eventfd.
struct AcceptInterrupt : detail::InterruptibleWait {
  int wakeFd = -1;
};

void wakeAccept(detail::InterruptibleWait& wait) noexcept {
  const std::uint64_t one = 1;
  // Fails only when the count would overflow, and it is readable then.
  (void)!::write(static_cast<AcceptInterrupt&>(wait).wakeFd, &one, sizeof one);
}

// waitForAny()'s poll inside a task.  It holds the worker, under
// blocking() (the pool covers for it): a listening socket and the pending
// clients cannot be one event to suspend the task on.  Yet it ends as the
// task's other waits do: on its TaskHandle::cancel() and its channel's
// shutdown (operation_canceled, as TcpListener::accept()), which make the
// eventfd in the last of `entries` readable, and at its DeadlineScope's
// deadline, which shortens `deadline` (timed_out).
std::error_code pollInTask(detail::ShmListenerState& state, std::vector<pollfd>& entries, Deadline& deadline,
                           Deadline& wake) {
  if (state.wakeFd < 0) {
    state.wakeFd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (state.wakeFd < 0) return std::error_code(errno, std::generic_category());
  }
  AcceptInterrupt wait;
  wait.interrupt = &wakeAccept;
  wait.wakeFd = state.wakeFd;
  if (std::error_code ec = detail::enterInterruptibleWait(wait)) return ec;
  deadline = std::min(deadline, wait.taskDeadline);
  wake = std::min(wake, deadline);
  entries.back() = {state.wakeFd, POLLIN, 0};
  std::error_code ec = blocking([&] { return detail::pollAnyUntil(entries.data(), entries.size(), wake); });
  detail::leaveInterruptibleWait(wait);
  if (!wait.interrupted.load(std::memory_order_acquire)) return ec;
  // Ended once, so written once: drained, the next wait starts clean.
  std::uint64_t count;
  (void)!::read(state.wakeFd, &count, sizeof count);
  return std::make_error_code(std::errc::operation_canceled);
}

// Waits until a connection is queued, a pending client sends something or
// hangs up, the first pending handshake runs out of patience, or
// `deadline` passes (timed_out).  A thread polls; a task, see pollInTask().
std::error_code waitForAny(detail::ShmListenerState& state, Deadline deadline) {
  std::vector<pollfd> entries(state.handshakes.size() + 2);
  entries[0] = {state.fd, POLLIN, 0};
  entries.back() = {-1, 0, 0};  // a task's eventfd; poll() skips a negative descriptor
  Deadline wake = deadline;
  for (std::size_t i = 0; i < state.handshakes.size(); ++i) {
    entries[i + 1] = {state.handshakes[i].control, POLLIN, 0};
    wake = std::min(wake, state.handshakes[i].deadline);
  }
  std::error_code ec = inTask() ? pollInTask(state, entries, deadline, wake)
                                : detail::pollAnyUntil(entries.data(), entries.size(), wake);
  for (std::size_t i = 0; i < state.handshakes.size(); ++i)
    state.handshakes[i].readable = entries[i + 1].revents != 0;
  // A handshake's patience ending is no timeout of this accept().
  if (ec == std::errc::timed_out && wake < deadline) ec.clear();
  return ec;
}

const std::string& nameOf(const detail::ShmListenerState* state) {
  static const std::string none;
  return state ? state->name : none;
}

}  // namespace

ShmListener::ShmListener() noexcept = default;
ShmListener::~ShmListener() = default;
ShmListener::ShmListener(ShmListener&& other) noexcept = default;
ShmListener& ShmListener::operator=(ShmListener&& other) noexcept = default;

ShmListener ShmListener::listen(const std::string& name, const ShmListenerOptions& options,
                                std::error_code& ec) noexcept {
  ShmListener listener;
  const int fd = detail::listenUnix(name, options.backlog, ec, detail::TakenPath::replaceStale);
  if (fd < 0) return listener;
  listener.state_ = std::make_unique<detail::ShmListenerState>();
  detail::ShmListenerState& state = *listener.state_;
  state.fd = fd;
  state.name = name;
  detail::SocketFileId file;
  if (detail::identifySocketFile(name, file)) state.socketFile = file;
  state.allowedUid = options.allowedUid ? static_cast<uid_t>(*options.allowedUid) : geteuid();
  if (options.allowedGid) state.allowedGid = static_cast<gid_t>(*options.allowedGid);
  state.allowAnyUser = options.allowAnyUser;
  return listener;
}

ShmListener ShmListener::listen(const std::string& name, const ShmListenerOptions& options) {
  std::error_code ec;
  ShmListener listener = listen(name, options, ec);
  throwIfError(ec, "listen", name);
  return listener;
}

ShmListener ShmListener::listen(const std::string& name, int backlog, std::error_code& ec) noexcept {
  ShmListenerOptions options;
  options.backlog = backlog;
  return listen(name, options, ec);
}

ShmListener ShmListener::listen(const std::string& name, int backlog) {
  ShmListenerOptions options;
  options.backlog = backlog;
  return listen(name, options);
}

ShmStream ShmListener::accept(std::error_code& ec) noexcept {
  if (!state_) {
    ec = Errc::not_open;
    return ShmStream();
  }
  detail::ShmListenerState& state = *state_;
  const Deadline deadline = detail::deadlineAfter(state.timeout);
  // Every handshake runs at once: new connections and pending ones are
  // polled together, and the first to end (well or badly) is returned.
  for (;;) {
    Connection connection;
    if (acceptQueued(state, connection, ec) || finishPending(state, connection, ec))
      return ShmStream(std::move(connection));
    if (detail::Clock::now() >= deadline) {
      ec = std::make_error_code(std::errc::timed_out);
      return ShmStream();
    }
    if ((ec = waitForAny(state, deadline))) return ShmStream();
  }
}

ShmStream ShmListener::accept() {
  std::error_code ec;
  ShmStream stream = accept(ec);
  throwIfError(ec, "accept", nameOf(state_.get()));
  return stream;
}

void ShmListener::setTimeout(Duration timeout, std::error_code& ec) noexcept {
  if (!state_) {
    ec = Errc::not_open;
  } else if (timeout < Duration::zero()) {
    ec = Errc::negative_timeout;
  } else {
    ec.clear();
    state_->timeout = timeout;
  }
}

void ShmListener::setTimeout(Duration timeout) {
  std::error_code ec;
  setTimeout(timeout, ec);
  throwIfError(ec, "set timeout", nameOf(state_.get()));
}

Duration ShmListener::timeout() const noexcept { return state_ ? state_->timeout : kInfiniteTimeout; }

const std::string& ShmListener::name() const noexcept { return nameOf(state_.get()); }

void ShmListener::close() noexcept { state_.reset(); }

bool ShmListener::isOpen() const noexcept { return state_ != nullptr; }

}  // namespace evchan
