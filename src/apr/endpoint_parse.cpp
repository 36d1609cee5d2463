// Endpoint::parse(): "host:port", "[v6]:port" and "tcp://host:port" with
// APR-util's URI parser.
#include <apr_strings.h>
#include <apr_uri.h>

#include <cstring>

#include <evchan/endpoint.h>
#include <evchan/error.h>
#include <evchan/system_error.h>

#include "apr/apr_runtime.h"

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

}  // namespace

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
  if (uri.hostname == nullptr || *uri.hostname == '\0' || std::strpbrk(uri.hostname, "@/ ") != nullptr) {
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
