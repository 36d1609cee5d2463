// The backends of a Linux build, best first.
#include "channel/poller.h"

namespace evchan::detail {

const std::vector<Backend>& compiledBackends() noexcept {
  // aio last: its sockets are the poll backend's, plus a reaper thread.
  static const std::vector<Backend> backends = {Backend::Epoll, Backend::Poll, Backend::AprPollset,
                                                Backend::Select, Backend::Aio};
  return backends;
}

std::unique_ptr<Poller> createCompiledPoller(Backend backend, std::error_code& ec) {
  switch (backend) {
    case Backend::Epoll: return createEpollPoller(ec);
    case Backend::Poll: return createPollPoller(ec);
    case Backend::Select: return createSelectPoller(ec);
    case Backend::AprPollset: return createAprPollsetPoller(ec);
    case Backend::Aio: return createAioPoller(ec);
    case Backend::Default: break;
  }
  ec = std::make_error_code(std::errc::function_not_supported);
  return nullptr;
}

}  // namespace evchan::detail
