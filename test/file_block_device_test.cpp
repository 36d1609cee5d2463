// SPDX-License-Identifier: Apache-2.0
// File on a block device, which File::open() accepts beside regular files:
// a loop device made for the test over an image of a known size.  Linux
// only; each case reports SKIP where no loop device can be made (no
// losetup, no /dev/loop-control, not root).
#include <cppunit/extensions/HelperMacros.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include <evchan/evchan.h>

#include "support/loopback.h"
#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/skip.h"
#include "support/temp_path.h"

namespace {

using evchan::File;
using evchan::test::describe;
using evchan::test::TempPath;

// Not a multiple of a larger power of two, so that a size rounded to one
// would show.
constexpr std::uint64_t kImageSize = 3 * 1024 * 1024 + 512;

// Runs a shell command and returns its first line of output; empty when it
// failed.
std::string firstLineOf(const std::string& command) {
  FILE* pipe = ::popen((command + " 2>/dev/null").c_str(), "r");
  if (pipe == nullptr) return {};
  char line[256] = {};
  const bool got = std::fgets(line, sizeof line, pipe) != nullptr;
  const int status = ::pclose(pipe);
  if (!got || status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return {};
  std::string text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

// A loop device over an image file: attached when made, detached (and the
// image removed) when it goes, whatever the test's outcome.
class LoopDevice {
 public:
  explicit LoopDevice(const std::vector<char>& contents) {
    if (!std::filesystem::exists("/dev/loop-control")) EVCHAN_SKIP("no /dev/loop-control: no loop devices here");
    {
      std::ofstream out(image_.str(), std::ios::binary);
      out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
      CPPUNIT_ASSERT_MESSAGE("cannot write the image " + image_.str(), out.good());
    }
    device_ = firstLineOf("losetup -f --show '" + image_.str() + "'");
    if (device_.empty()) EVCHAN_SKIP("'losetup -f --show' failed (not root, or no losetup)");
  }
  ~LoopDevice() { std::system(("losetup -d '" + device_ + "' >/dev/null 2>&1").c_str()); }
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;

  const std::string& path() const { return device_; }

 private:
  TempPath image_;
  std::string device_;
};

}  // namespace

class FileBlockDeviceTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(FileBlockDeviceTest);
  CPPUNIT_TEST(testSizeIsTheDevicesSize);
  CPPUNIT_TEST_SUITE_END();

 public:
  // size() is the device's size, and the bytes just below it are the
  // image's last ones.  Before, size() was 0: fstat's st_size, which is
  // not a block device's size.
  void testSizeIsTheDevicesSize() {
    std::vector<char> contents(kImageSize);
    evchan::test::fillPattern(contents.data(), contents.size(), 0);
    const LoopDevice device(contents);
    File file = File::open(device.path(), evchan::kFileRead);
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(kImageSize, file.size(ec));
    CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);
    CPPUNIT_ASSERT_EQUAL(kImageSize, file.size());
    std::vector<char> tail(4096);
    CPPUNIT_ASSERT_EQUAL(std::size_t(512), file.readAt(kImageSize - 512, tail.data(), tail.size()));
    CPPUNIT_ASSERT(std::equal(tail.begin(), tail.begin() + 512, contents.end() - 512));
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(FileBlockDeviceTest);
