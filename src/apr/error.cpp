// SPDX-License-Identifier: Apache-2.0
// evchan_category(): messages and portable conditions for evchan::Errc.
#include <evchan/error.h>

namespace evchan {
namespace {

class EvchanCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "evchan"; }

  std::string message(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::end_of_stream: return "end of stream: the peer closed the connection";
      case Errc::not_open: return "the socket is not open (closed or moved from)";
      case Errc::null_buffer: return "null buffer with a non-zero length";
      case Errc::port_out_of_range: return "port out of range (0..65535)";
      case Errc::empty_host: return "empty host name";
      case Errc::bad_endpoint:
        return "bad endpoint: expected host:port, [v6]:port or tcp://host:port, or for a local socket a path or "
               "@name";
      case Errc::negative_timeout: return "negative timeout";
      case Errc::no_address: return "the name has no address of the requested family";
      case Errc::already_in_flight: return "the event is already in flight (posted and not yet returned)";
      case Errc::channel_shut_down: return "the event channel is shut down";
      case Errc::socket_busy: return "another read or write is already pending on the socket";
      case Errc::wrong_channel: return "the socket is watched by another event channel";
      case Errc::descriptor_too_large: return "the descriptor is beyond the backend's limit (select: FD_SETSIZE)";
      case Errc::message_too_long: return "the line or message is longer than the limit the reader was given";
    }
    return "unknown evchan error " + std::to_string(value);
  }

  std::error_condition default_error_condition(int value) const noexcept override {
    switch (static_cast<Errc>(value)) {
      case Errc::not_open: return std::errc::bad_file_descriptor;
      case Errc::null_buffer:
      case Errc::port_out_of_range:
      case Errc::empty_host:
      case Errc::bad_endpoint:
      case Errc::negative_timeout: return std::errc::invalid_argument;
      case Errc::no_address: return std::errc::address_family_not_supported;
      case Errc::already_in_flight:
      case Errc::socket_busy: return std::errc::operation_in_progress;
      case Errc::channel_shut_down: return std::errc::operation_canceled;
      case Errc::wrong_channel: return std::errc::invalid_argument;
      case Errc::descriptor_too_large: return std::errc::value_too_large;
      case Errc::message_too_long: return std::errc::message_size;
      case Errc::end_of_stream: break;  // no std::errc for an orderly EOF
    }
    return std::error_condition(value, *this);
  }
};

}  // namespace

const std::error_category& evchan_category() noexcept {
  // Never destroyed: the tasks of a channel that static destruction tears
  // down (or that end after main() returned) still make and describe codes.
  static const EvchanCategory* const category = new EvchanCategory;
  return *category;
}

std::error_code make_error_code(Errc e) noexcept {
  return std::error_code(static_cast<int>(e), evchan_category());
}

}  // namespace evchan
