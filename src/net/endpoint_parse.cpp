// SPDX-License-Identifier: Apache-2.0
// Endpoint::parse(): "host:port", "[v6]:port" and "tcp://host:port" with
// APR-util's URI parser, and the host rules it shares with the resolver.
#include <apr_strings.h>
#include <apr_uri.h>

#include <cstring>

#include <evchan/endpoint.h>
#include <evchan/error.h>
#include <evchan/system_error.h>

#include "apr/apr_runtime.h"
#include "net/endpoint_host.h"

namespace evchan {
namespace {

bool startsWithScheme(std::string_view text) { return text.find("://") != std::string_view::npos; }

// APR parses the port with strtol and stores it in a 16-bit field, so
// "70000" would wrap; re-read the digits here.
std::error_code parsePort(const char* digits, int& port) {
  if (digits == nullptr || *digits == '\0') return Errc::bad_endpoint;
  long value = 0;
  for (const char* p = digits; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9') return Errc::bad_endpoint;
    value = value * 10 + (*p - '0');
    if (value > 65535) return Errc::port_out_of_range;
  }
  port = static_cast<int>(value);
  return {};
}

std::error_code parseUri(apr_pool_t* pool, const char* text, apr_uri_t& uri) {
  if (apr_uri_parse(pool, text, &uri) != APR_SUCCESS) return Errc::bad_endpoint;
  if (uri.scheme == nullptr || apr_strnatcasecmp(uri.scheme, "tcp") != 0) return Errc::bad_endpoint;
  if (uri.user != nullptr || uri.password != nullptr || uri.query != nullptr || uri.fragment != nullptr)
    return Errc::bad_endpoint;
  if (uri.path != nullptr && std::strcmp(uri.path, "") != 0 && std::strcmp(uri.path, "/") != 0)
    return Errc::bad_endpoint;
  return {};
}

bool isNameCharacter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_';
}

bool isHexDigit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Lexical only: the resolver judges whether the groups make an address.
bool isIpv6Literal(std::string_view host) {
  const std::size_t percent = host.find('%');
  const std::string_view address = host.substr(0, percent);
  if (percent != std::string_view::npos) {
    const std::string_view zone = host.substr(percent + 1);
    if (zone.empty()) return false;
    for (char c : zone) {
      if (!isNameCharacter(c)) return false;
    }
  }
  int colons = 0;
  for (char c : address) {
    if (c == ':') {
      ++colons;
    } else if (!isHexDigit(c) && c != '.') {
      return false;
    }
  }
  return colons >= 2;
}

// The text of the host as it stood: APR drops the brackets of "[v6]:port".
bool hostWasBracketed(std::string_view text) {
  const std::size_t scheme = text.find("://");
  const std::string_view hostinfo = scheme == std::string_view::npos ? text : text.substr(scheme + 3);
  return !hostinfo.empty() && hostinfo.front() == '[';
}

}  // namespace

namespace detail {

std::error_code checkHostForResolver(const std::string& host) noexcept {
  if (host.find('\0') != std::string::npos) return Errc::bad_endpoint;
  return {};
}

bool isParsableHost(std::string_view host, bool bracketed) noexcept {
  if (host.empty()) return false;
  if (bracketed) return isIpv6Literal(host);
  for (char c : host) {
    if (!isNameCharacter(c)) return false;
  }
  return true;
}

}  // namespace detail

Endpoint Endpoint::parse(std::string_view text, std::error_code& ec) noexcept {
  Endpoint endpoint;
  if (text.empty() || text.find('\0') != std::string_view::npos) {
    ec = Errc::bad_endpoint;
    return endpoint;
  }
  detail::PoolPtr pool = detail::createPool(ec);
  if (!pool) return endpoint;
  const char* copy = apr_pstrndup(pool.get(), text.data(), text.size());
  apr_uri_t uri = {};
  if (startsWithScheme(text)) {
    ec = parseUri(pool.get(), copy, uri);
  } else {
    ec = apr_uri_parse_hostinfo(pool.get(), copy, &uri) == APR_SUCCESS ? std::error_code()
                                                                      : make_error_code(Errc::bad_endpoint);
  }
  if (ec) return endpoint;
  if (uri.hostname == nullptr || !detail::isParsableHost(uri.hostname, hostWasBracketed(text))) {
    ec = Errc::bad_endpoint;
    return endpoint;
  }
  int port = 0;
  if ((ec = parsePort(uri.port_str, port))) return endpoint;
  endpoint.host = uri.hostname;
  endpoint.port = port;
  return endpoint;
}

Endpoint Endpoint::parse(std::string_view text) {
  std::error_code ec;
  Endpoint endpoint = parse(text, ec);
  throwIfError(ec, "parse endpoint", std::string(text));
  return endpoint;
}

}  // namespace evchan
