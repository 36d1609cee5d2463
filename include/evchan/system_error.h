// SPDX-License-Identifier: Apache-2.0
// The exception thrown by the throwing forms of evchan's blocking calls.
#ifndef EVCHAN_SYSTEM_ERROR_H
#define EVCHAN_SYSTEM_ERROR_H

#include <string>
#include <system_error>

#include <evchan/export.h>

namespace evchan {

/// A std::system_error that also names the operation that failed and the
/// peer it was talking to, e.g. "connect (peer 127.0.0.1:9): Connection refused".
/// code() keeps the original status; compare it with std::errc values.
class EVCHAN_API SystemError : public std::system_error {
 public:
  /// `operation` is a short verb phrase ("connect", "read"); `peer` is the
  /// remote address or endpoint, empty when there is none.
  SystemError(std::error_code code, std::string operation, std::string peer = {});

  /// The operation that failed, as given to the constructor.
  const std::string& operation() const noexcept { return operation_; }
  /// The peer address or endpoint, possibly empty.
  const std::string& peer() const noexcept { return peer_; }

 private:
  std::string operation_;
  std::string peer_;
};

/// Throws SystemError(code, operation, peer) when `code` holds an error.
EVCHAN_API void throwIfError(const std::error_code& code, const char* operation,
                  const std::string& peer = {});

}  // namespace evchan

#endif  // EVCHAN_SYSTEM_ERROR_H
