// SPDX-License-Identifier: Apache-2.0
// Address and Endpoint formatting (no OS calls).
#include <evchan/address.h>
#include <evchan/endpoint.h>

namespace evchan {
namespace {

std::string joinHostPort(const std::string& host, int port) {
  const bool ipv6Literal = host.find(':') != std::string::npos;
  std::string text;
  text.reserve(host.size() + 8);
  if (ipv6Literal) text += '[';
  text += host;
  if (ipv6Literal) text += ']';
  text += ':';
  text += std::to_string(port);
  return text;
}

}  // namespace

std::string Address::toString() const { return empty() ? std::string() : joinHostPort(host_, port_); }

Address Address::fromNumeric(std::string numericHost, int port, AddressFamily family) {
  Address address;
  address.host_ = std::move(numericHost);
  address.port_ = port;
  address.family_ = family;
  return address;
}

std::string Endpoint::toString() const { return joinHostPort(host, port); }

}  // namespace evchan
