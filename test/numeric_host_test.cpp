// SPDX-License-Identifier: Apache-2.0
// The numeric hosts that skip the resolver (src/apr/numeric_host.cpp),
// checked against the system resolver itself.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <string>
#include <vector>

#include "apr/host_lookup.h"

namespace {

using evchan::Address;
using evchan::AddressFamily;
using evchan::Endpoint;

// The numeric fast path against the system resolver: what it accepts it
// prints as the resolver does; what it leaves alone still resolves.
class NumericHostTest : public CppUnit::TestFixture {
  CPPUNIT_TEST_SUITE(NumericHostTest);
  CPPUNIT_TEST(acceptedLiteralsMatchTheResolver);
  CPPUNIT_TEST(otherHostsAreLeftToTheResolver);
  CPPUNIT_TEST_SUITE_END();

 public:
  void acceptedLiteralsMatchTheResolver() {
    const char* const literals[] = {"0.0.0.0", "127.0.0.1", "255.255.255.255", "10.20.30.40", "::", "::1",
                                    "1::", "2001:DB8::1", "2001:db8:0:0:1:0:0:1", "1:0:0:2:0:0:0:3",
                                    "0:0:1::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:1.2.3.4", "fe80::", "1:2:3:4:5:6:7::",
                                    "0:0:0:0:0:0:0:1", "ffff::ffff", "0:0:0:0:1:ffff::", "::2"};
    for (const char* literal : literals) {
      AddressFamily family = AddressFamily::Unspecified;
      std::string canonical;
      CPPUNIT_ASSERT_MESSAGE(literal, evchan::detail::parseNumericHost(literal, family, canonical));
      std::error_code ec;
      const std::vector<Address> system = evchan::detail::lookUpHost(Endpoint(literal, 7), family, ec);
      if (ec) continue;  // no IPv6 in this resolver: nothing to compare with
      CPPUNIT_ASSERT_EQUAL_MESSAGE(literal, std::size_t(1), system.size());
      CPPUNIT_ASSERT_EQUAL_MESSAGE(literal, system[0].host(), canonical);
      CPPUNIT_ASSERT_MESSAGE(literal, evchan::resolve(Endpoint(literal, 7)) == system);
    }
  }

  void otherHostsAreLeftToTheResolver() {
    // Valid for the C resolver but not strict (octal, short forms,
    // embedded IPv4 printing, zones), or not numeric at all.
    const char* const others[] = {"010.0.0.1", "127.1", "0x7f.0.0.1", "::ffff:1.2.3.4", "::ffff:0:0", "::1.2.3.4", "fe80::1%lo",
                                  "localhost", "256.0.0.1", "1.2.3", "1.2.3.4.5", "1:2:3:4:5:6:7:8:9", "1::2::3",
                                  ":1", "1:", "12345::", "1.2.3.4:", "::1.2.3", "g::1", ""};
    for (const char* host : others) {
      AddressFamily family = AddressFamily::Unspecified;
      std::string canonical;
      CPPUNIT_ASSERT_MESSAGE(host, !evchan::detail::parseNumericHost(host, family, canonical));
    }
    // Left alone, they still resolve as the system says.
    for (const char* host : {"010.0.0.1", "127.1"}) {
      std::error_code ec;
      const std::vector<Address> system = evchan::detail::lookUpHost(Endpoint(host, 7), AddressFamily::Unspecified, ec);
      std::error_code viaResolve;
      CPPUNIT_ASSERT_MESSAGE(host, evchan::resolve(Endpoint(host, 7), AddressFamily::Unspecified, viaResolve) == system);
      CPPUNIT_ASSERT(ec == viaResolve);
    }
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(NumericHostTest);

}  // namespace
