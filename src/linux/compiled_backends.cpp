// SPDX-License-Identifier: Apache-2.0
// The backends of a Linux build, best first.
#include "poller/poller.h"

namespace evchan::detail {

// Backend::Default tries them in this order.  epoll stays ahead of
// io_uring until the benchmarks (make bench) show io_uring ahead on the
// common workloads (README: "The io_uring backend").
const std::vector<Backend>& compiledBackends() noexcept {
  static const std::vector<Backend> backends = [] {
    std::vector<Backend> list = {Backend::Epoll};
    if (ioUringCompiled()) list.push_back(Backend::IoUring);
    // aio last: its sockets are the poll backend's, plus a reaper thread.
    for (Backend backend : {Backend::Poll, Backend::AprPollset, Backend::Select, Backend::Aio}) list.push_back(backend);
    return list;
  }();
  return backends;
}

std::unique_ptr<Poller> createCompiledPoller(Backend backend, std::error_code& ec) {
  switch (backend) {
    case Backend::Epoll: return createEpollPoller(ec);
    case Backend::Poll: return createPollPoller(ec);
    case Backend::Select: return createSelectPoller(ec);
    case Backend::AprPollset: return createAprPollsetPoller(ec);
    case Backend::IoUring: return createIoUringPoller(ec);
    case Backend::Aio: return createAioPoller(ec);
    case Backend::Default:
    case Backend::Iocp: break;  // Windows only
  }
  ec = std::make_error_code(std::errc::function_not_supported);
  return nullptr;
}

}  // namespace evchan::detail
