// Descriptor counting for LeakCheckedFixture (Linux: /proc/self/fd).
#include "support/leak_checked_fixture.h"

#include <dirent.h>


namespace evchan::test {

int openDescriptorCount() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // the directory stream's own descriptor
}

void LeakCheckedFixture::setUp() { descriptorsAtStart_ = openDescriptorCount(); }

void LeakCheckedFixture::tearDown() {
  if (descriptorsAtStart_ < 0) return;
  // Tests join every thread they start, so everything they opened must be
  // closed by now.
  CPPUNIT_ASSERT_EQUAL_MESSAGE("descriptors open after the test (leak)", descriptorsAtStart_,
                               openDescriptorCount());
}

}  // namespace evchan::test
