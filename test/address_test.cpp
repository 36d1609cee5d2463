// SPDX-License-Identifier: Apache-2.0
// Tests of resolve() and Address.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/address.h>
#include <evchan/error.h>
#include <evchan/system_error.h>
#include <evchan/tcp_socket.h>

#include <chrono>
#include <string>
#include <vector>

#include "support/loopback.h"
#include "support/skip.h"
#include "support/slowdown.h"

using evchan::Address;
using evchan::AddressFamily;

class AddressTest : public CppUnit::TestFixture {
  CPPUNIT_TEST_SUITE(AddressTest);
  CPPUNIT_TEST(testResolvesNumericIpv4);
  CPPUNIT_TEST(testResolvesNumericIpv6);
  CPPUNIT_TEST(testResolvesLocalhostByName);
  CPPUNIT_TEST(testFamilyFilter);
  CPPUNIT_TEST(testToString);
  CPPUNIT_TEST(testPortOutOfRange);
  CPPUNIT_TEST(testEmptyHost);
  CPPUNIT_TEST(testHostWithNulIsRefused);
  CPPUNIT_TEST(testUnresolvableHost);
  CPPUNIT_TEST(testThrowingFormNamesTheEndpoint);
  CPPUNIT_TEST_SUITE_END();

 public:
  void testResolvesNumericIpv4() {
    const std::vector<Address> addresses = evchan::resolve({"127.0.0.1", 80});
    CPPUNIT_ASSERT_EQUAL(std::size_t(1), addresses.size());
    CPPUNIT_ASSERT_EQUAL(std::string("127.0.0.1"), addresses[0].host());
    CPPUNIT_ASSERT_EQUAL(80, addresses[0].port());
    CPPUNIT_ASSERT(addresses[0].family() == AddressFamily::IPv4);
  }

  void testResolvesNumericIpv6() {
    std::error_code ec;
    const std::vector<Address> addresses = evchan::resolve({"::1", 443}, AddressFamily::Unspecified, ec);
    if (ec && !evchan::test::ipv6LoopbackAvailable()) EVCHAN_SKIP("no IPv6 on this machine");
    CPPUNIT_ASSERT_MESSAGE(ec.message(), !ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t(1), addresses.size());
    CPPUNIT_ASSERT_EQUAL(std::string("::1"), addresses[0].host());
    CPPUNIT_ASSERT(addresses[0].family() == AddressFamily::IPv6);
  }

  void testResolvesLocalhostByName() {
    const std::vector<Address> addresses = evchan::resolve({"localhost", 8080});
    CPPUNIT_ASSERT(!addresses.empty());
    for (const Address& address : addresses) {
      CPPUNIT_ASSERT_EQUAL(8080, address.port());
      CPPUNIT_ASSERT_MESSAGE(address.toString(), address.host() == "127.0.0.1" || address.host() == "::1");
    }
  }

  void testFamilyFilter() {
    const std::vector<Address> v4 = evchan::resolve({"127.0.0.1", 1}, AddressFamily::IPv4);
    CPPUNIT_ASSERT(v4.at(0).family() == AddressFamily::IPv4);
    std::error_code ec;
    evchan::resolve({"127.0.0.1", 1}, AddressFamily::IPv6, ec);
    CPPUNIT_ASSERT_MESSAGE("an IPv4 literal has no IPv6 address", ec);
  }

  void testToString() {
    CPPUNIT_ASSERT_EQUAL(std::string("127.0.0.1:80"),
                         Address::fromNumeric("127.0.0.1", 80, AddressFamily::IPv4).toString());
    CPPUNIT_ASSERT_EQUAL(std::string("[::1]:80"), Address::fromNumeric("::1", 80, AddressFamily::IPv6).toString());
    CPPUNIT_ASSERT_EQUAL(std::string(), Address().toString());
    CPPUNIT_ASSERT(Address().empty());
  }

  void testPortOutOfRange() {
    for (int port : {-1, 65536, 1 << 20}) {
      std::error_code ec;
      const std::vector<Address> addresses = evchan::resolve({"127.0.0.1", port}, AddressFamily::Unspecified, ec);
      CPPUNIT_ASSERT(ec == evchan::Errc::port_out_of_range);
      CPPUNIT_ASSERT(addresses.empty());
    }
  }

  void testEmptyHost() {
    std::error_code ec;
    evchan::resolve({"", 80}, AddressFamily::Unspecified, ec);
    CPPUNIT_ASSERT(ec == evchan::Errc::empty_host);
    CPPUNIT_ASSERT(ec == std::errc::invalid_argument);
  }

  // The C resolver reads a host only up to its first NUL: this resolved to
  // 127.0.0.1 before it was refused.
  void testHostWithNulIsRefused() {
    const std::string host = std::string("127.0.0.1\0.allowed.example.com", 30);
    std::error_code ec;
    const std::vector<Address> addresses = evchan::resolve({host, 80}, AddressFamily::Unspecified, ec);
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == evchan::Errc::bad_endpoint);
    CPPUNIT_ASSERT(addresses.empty());
    evchan::TcpSocket socket = evchan::TcpSocket::connect({host, 80}, std::chrono::seconds(1), ec);
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == evchan::Errc::bad_endpoint);
    CPPUNIT_ASSERT(!socket.isOpen());
  }

  void testUnresolvableHost() {
    // A label over 63 characters is rejected inside the resolver, so this
    // fails the same way on a machine without any network.
    const std::string host = std::string(70, 'a') + ".invalid";
    const auto started = std::chrono::steady_clock::now();
    std::error_code ec;
    const std::vector<Address> addresses = evchan::resolve({host, 80}, AddressFamily::Unspecified, ec);
    CPPUNIT_ASSERT_MESSAGE("resolving " + host + " should fail", ec);
    CPPUNIT_ASSERT(addresses.empty());
    CPPUNIT_ASSERT(!ec.message().empty());
    CPPUNIT_ASSERT(std::chrono::steady_clock::now() - started < evchan::test::generous(std::chrono::seconds(10)));
  }

  void testThrowingFormNamesTheEndpoint() {
    try {
      evchan::resolve({"", 80});
      CPPUNIT_FAIL("resolve should have thrown");
    } catch (const evchan::SystemError& e) {
      CPPUNIT_ASSERT(e.code() == evchan::Errc::empty_host);
      CPPUNIT_ASSERT_EQUAL(std::string("resolve"), e.operation());
    }
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(AddressTest);
