// ShmListener: accepts AF_UNIX connections and the segment each brings.
#include <evchan/shm_stream.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include <evchan/blocking.h>
#include <evchan/error.h>
#include <evchan/system_error.h>
#include <evchan/task.h>

#include "poller/deadline.h"
#include "linux/shm_connection.h"
#include "linux/unix_socket.h"

namespace evchan {

using detail::Deadline;

namespace detail {

struct ShmListenerState {
  ~ShmListenerState() {
    ::close(fd);
    // A path name leaves a socket file behind; an abstract name does not.
    if (name[0] != '@') unlink(name.c_str());
  }

  int fd = -1;
  std::string name;
  Duration timeout = kInfiniteTimeout;
};

}  // namespace detail

namespace {

// A client that connected but sends nothing cannot hold accept() longer.
constexpr Duration kHelloPatience = std::chrono::seconds(5);

// Waits for `fd`; inside a task as a declared blocking call, so the pool
// covers for the worker it holds (a listening socket cannot be read, so
// there is no ReadEvent to suspend the task on).
std::error_code waitReadable(int fd, Deadline deadline) {
  if (inTask()) return blocking([&] { return detail::pollUntil(fd, POLLIN, deadline); });
  return detail::pollUntil(fd, POLLIN, deadline);
}

// The far end of the space doorbell must be what the protocol says: a
// connected AF_UNIX stream socket, not some other descriptor.
bool isUnixStream(int fd) {
  int domain = 0, type = 0;
  socklen_t length = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) != 0 || domain != AF_UNIX) return false;
  length = sizeof type;
  return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0 && type == SOCK_STREAM;
}

// The handshake on an accepted connection: the hello, the memfd and the
// space doorbell, all checked.  Takes `control`.
std::unique_ptr<detail::ShmConnection> handshake(int control, const std::string& name, Deadline deadline,
                                                 std::error_code& ec) {
  detail::ShmHello hello = {};
  int fds[2];
  const Deadline patience = std::min(deadline, detail::deadlineAfter(kHelloPatience));
  if (inTask()) {
    ec = blocking([&] { return detail::receiveWithDescriptors(control, &hello, sizeof hello, fds, 2, patience); });
  } else {
    ec = detail::receiveWithDescriptors(control, &hello, sizeof hello, fds, 2, patience);
  }
  if (!ec && (hello.magic != detail::kHelloMagic || hello.version != detail::kSegmentVersion)) {
    ::close(fds[0]);
    ::close(fds[1]);
    ec = std::make_error_code(std::errc::bad_message);
  }
  if (!ec && !isUnixStream(fds[1])) {
    ::close(fds[0]);
    ::close(fds[1]);
    ec = std::make_error_code(std::errc::bad_message);
  }
  if (ec) {
    ::close(control);
    // A client that hung up or stalled before its hello is as unusable as
    // one that sent a bad one.
    if (ec != std::errc::bad_message) ec = std::make_error_code(std::errc::bad_message);
    return nullptr;
  }
  detail::Segment segment = detail::adoptSegment(fds[0], ec);
  if (ec) {
    ::close(fds[1]);
    ::close(control);
    return nullptr;
  }
  // The passed socket keeps the peer's flags; ours must not block.
  const int flags = fcntl(fds[1], F_GETFL);
  if (flags < 0 || fcntl(fds[1], F_SETFL, flags | O_NONBLOCK) != 0) {
    ec = std::error_code(errno, std::generic_category());
    ::close(fds[1]);
    ::close(control);
    detail::unmapSegment(segment);
    return nullptr;
  }
  return detail::ShmConnection::make(segment, detail::ShmRole::Listening, control, fds[1], name, ec);
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

ShmListener ShmListener::listen(const std::string& name, int backlog, std::error_code& ec) noexcept {
  ShmListener listener;
  const int fd = detail::listenUnix(name, backlog, ec);
  if (fd < 0) return listener;
  listener.state_ = std::make_unique<detail::ShmListenerState>();
  listener.state_->fd = fd;
  listener.state_->name = name;
  return listener;
}

ShmListener ShmListener::listen(const std::string& name, int backlog) {
  std::error_code ec;
  ShmListener listener = listen(name, backlog, ec);
  throwIfError(ec, "listen", name);
  return listener;
}

ShmStream ShmListener::accept(std::error_code& ec) noexcept {
  if (!state_) {
    ec = Errc::not_open;
    return ShmStream();
  }
  const Deadline deadline = detail::deadlineAfter(state_->timeout);
  for (;;) {
    const int control = detail::acceptUnix(state_->fd, ec);
    if (control >= 0) return ShmStream(handshake(control, state_->name, deadline, ec));
    if (ec != std::errc::resource_unavailable_try_again) return ShmStream();
    if (state_->timeout == Duration::zero()) {
      ec = std::make_error_code(std::errc::timed_out);
      return ShmStream();
    }
    if ((ec = waitReadable(state_->fd, deadline))) return ShmStream();
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
