// SPDX-License-Identifier: Apache-2.0
// The epoll backend: every socket registered once, edge-triggered, for
// both directions (as Go's netpoller does), so posting an operation costs
// no epoll_ctl; an eventfd carries wake-ups.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>

#include <evchan/error.h>

#include "poller/poller.h"

namespace evchan::detail {
namespace {

constexpr int kBatch = 256;

class EpollPoller final : public Poller {
 public:
  ~EpollPoller() override {
    if (wakeFd_ >= 0) ::close(wakeFd_);
    if (epollFd_ >= 0) ::close(epollFd_);
  }

  std::error_code open() noexcept {
    epollFd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epollFd_ < 0) return makeAprError(errno);
    wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wakeFd_ < 0) return makeAprError(errno);
    epoll_event event{};
    event.events = EPOLLIN;  // level-triggered: stays ready until drained
    event.data.ptr = nullptr;
    if (::epoll_ctl(epollFd_, EPOLL_CTL_ADD, wakeFd_, &event) != 0) return makeAprError(errno);
    return {};
  }

  Backend kind() const noexcept override { return Backend::Epoll; }
  bool edgeTriggered() const noexcept override { return true; }

  std::error_code add(Watch& watch) noexcept override {
    epoll_event event{};
    // EPOLLPRI: urgent data ends reads early (see kUrgent).
    event.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;
    event.data.ptr = &watch;
    if (::epoll_ctl(epollFd_, EPOLL_CTL_ADD, watch.fd, &event) != 0) return makeAprError(errno);
    return {};
  }

  std::error_code setInterest(Watch&, unsigned) noexcept override { return {}; }

  void remove(Watch& watch) noexcept override {
    // Before close(): a descriptor shared with a forked child would
    // otherwise stay registered.  ENOENT/EBADF only mean "already gone".
    ::epoll_ctl(epollFd_, EPOLL_CTL_DEL, watch.fd, nullptr);
  }

  std::error_code wait(std::vector<Readiness>& ready, Deadline deadline) noexcept override {
    ready.clear();
    const int timeoutMs = timeoutMilliseconds(deadline);
    const int count = ::epoll_wait(epollFd_, events_, kBatch, timeoutMs);
    if (count < 0) return errno == EINTR ? std::error_code() : makeAprError(errno);
    for (int i = 0; i < count; ++i) {
      auto* watch = static_cast<Watch*>(events_[i].data.ptr);
      if (watch == nullptr) {
        std::uint64_t value;
        while (::read(wakeFd_, &value, sizeof value) < 0 && errno == EINTR) {
        }
        continue;
      }
      const std::uint32_t got = events_[i].events;
      const bool failed = (got & (EPOLLERR | EPOLLHUP)) != 0;
      unsigned flags = 0;
      if (failed || (got & (EPOLLIN | EPOLLRDHUP))) flags |= kReadable;
      if (failed || (got & EPOLLOUT)) flags |= kWritable;
      if (failed || (got & EPOLLRDHUP)) flags |= kHungUp;
      if (got & EPOLLPRI) flags |= kReadable | kUrgent;
      ready.push_back(Readiness{watch, flags});
    }
    return {};
  }

  void wakeup() noexcept override {
    const std::uint64_t one = 1;
    while (::write(wakeFd_, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }

 private:
  int epollFd_ = -1;
  int wakeFd_ = -1;
  epoll_event events_[kBatch];
};

}  // namespace

std::unique_ptr<Poller> createEpollPoller(std::error_code& ec) {
  auto poller = std::make_unique<EpollPoller>();
  if ((ec = poller->open())) return nullptr;
  return poller;
}

}  // namespace evchan::detail
