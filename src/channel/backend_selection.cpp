// SPDX-License-Identifier: Apache-2.0
// Choosing a backend: Backend::Default, EVCHAN_BACKEND, strict requests.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <evchan/error.h>
#include <evchan/event_channel.h>

#include "poller/poller.h"

namespace evchan {

const char* backendName(Backend backend) noexcept {
  switch (backend) {
    case Backend::Default: return "default";
    case Backend::Epoll: return "epoll";
    case Backend::Poll: return "poll";
    case Backend::Select: return "select";
    case Backend::AprPollset: return "apr_pollset";
    case Backend::Aio: return "aio";
    case Backend::IoUring: return "io_uring";
    case Backend::Iocp: return "iocp";
  }
  return "unknown";
}

bool backendFromName(const std::string& name, Backend& backend) noexcept {
  for (Backend candidate : {Backend::Default, Backend::Epoll, Backend::IoUring, Backend::Poll, Backend::Select,
                            Backend::AprPollset, Backend::Aio, Backend::Iocp}) {
    if (name == backendName(candidate)) {
      backend = candidate;
      return true;
    }
  }
  return false;
}

namespace detail {

Backend backendFromEnvironment(std::error_code& ec) {
  ec.clear();
  const char* name = std::getenv("EVCHAN_BACKEND");
  if (name == nullptr || *name == '\0') return Backend::Default;
  Backend backend = Backend::Default;
  if (std::strcmp(name, "default") == 0 || !backendFromName(name, backend)) {
    ec = std::make_error_code(std::errc::invalid_argument);
  }
  return backend;
}

std::unique_ptr<Poller> createPoller(Backend backend, std::error_code& ec) {
  const std::vector<Backend>& compiled = compiledBackends();
  if (backend != Backend::Default) {
    if (std::find(compiled.begin(), compiled.end(), backend) == compiled.end()) {
      ec = std::make_error_code(std::errc::function_not_supported);
      return nullptr;
    }
    return createCompiledPoller(backend, ec);
  }
  const Backend fromEnvironment = backendFromEnvironment(ec);
  if (ec) return nullptr;
  if (fromEnvironment != Backend::Default) return createPoller(fromEnvironment, ec);
  // Best first; a kernel without one (ENOSYS, EPERM in a sandbox) falls
  // back to the next.
  for (Backend candidate : compiled) {
    if (auto poller = createCompiledPoller(candidate, ec)) return poller;
  }
  return nullptr;
}

}  // namespace detail
}  // namespace evchan
