// SPDX-License-Identifier: Apache-2.0
// Fuzz target: Endpoint::parse().  Whatever it accepts must print back
// (toString()) as text that parses to the same endpoint and prints the
// same; whatever it refuses must be bad_endpoint or port_out_of_range.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <evchan/endpoint.h>
#include <evchan/error.h>

#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::error_code ec;
  const evchan::Endpoint endpoint = evchan::Endpoint::parse(text, ec);
  if (ec) {
    FUZZ_CHECK(ec == evchan::Errc::bad_endpoint || ec == evchan::Errc::port_out_of_range);
    return 0;
  }
  FUZZ_CHECK(!endpoint.host.empty());
  FUZZ_CHECK(endpoint.host.find('\0') == std::string::npos);
  FUZZ_CHECK(endpoint.port >= 0 && endpoint.port <= 65535);

  const std::string printed = endpoint.toString();
  const evchan::Endpoint again = evchan::Endpoint::parse(printed, ec);
  FUZZ_CHECK(!ec);
  FUZZ_CHECK(again == endpoint);
  FUZZ_CHECK(again.toString() == printed);
  return 0;
}
