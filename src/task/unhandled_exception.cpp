// SPDX-License-Identifier: Apache-2.0
// The unhandled-exception handler's call and its default line on stderr.
#include "task/unhandled_exception.h"

#include <cstdio>
#include <string>
#include <system_error>

#include <evchan/event_channel.h>

#include "task/channel_front.h"

namespace evchan {

void printUnhandledTaskException(TaskId id, const std::exception_ptr& exception) noexcept {
  const char* what = "an exception not derived from std::exception";
  std::string text;
  try {
    if (exception) std::rethrow_exception(exception);
  } catch (const std::exception& e) {
    try {
      text = e.what();
      what = text.c_str();
    } catch (...) {
      what = "std::exception (its message did not fit in memory)";
    }
  } catch (...) {
  }
  // One write, so that lines of tasks ending at once do not interleave.
  std::fprintf(stderr, "evchan: task %llu ended with an unhandled exception: %s\n",
               static_cast<unsigned long long>(id), what);
}

namespace detail {

bool isCancellation(const std::exception_ptr& exception) noexcept {
  try {
    std::rethrow_exception(exception);
  } catch (const std::system_error& e) {
    return e.code() == std::errc::operation_canceled;
  } catch (...) {
  }
  return false;
}

void reportUnhandledException(const ChannelFront& front, TaskId id, const std::exception_ptr& exception) noexcept {
  if (front.onUnhandledException) {
    try {
      front.onUnhandledException(id, exception);
      return;
    } catch (...) {
      std::fprintf(stderr, "evchan: onUnhandledException threw; task %llu's exception follows\n",
                   static_cast<unsigned long long>(id));
    }
  }
  printUnhandledTaskException(id, exception);
}

}  // namespace detail
}  // namespace evchan
