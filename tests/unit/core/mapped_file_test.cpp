// Releasing mapped pages: only whole pages of a live file mapping go, their contents read back
// the same; heap memory (which MADV_DONTNEED would zero) is never touched.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <vector>

#include "runtime/core/mapped_file.h"

namespace moe {
namespace {

TEST(MappedFile, ReleasesOnlyPagesOfLiveFileMappings) {
  const size_t page = size_t(::sysconf(_SC_PAGESIZE));
  const auto path = std::filesystem::temp_directory_path() / ("moe-mapped-" + std::to_string(::getpid()));
  std::vector<uint8_t> pattern(4 * page);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = uint8_t(i * 31 + 7);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(pattern.data()), std::streamsize(pattern.size()));
  {
    const auto file = MappedFile::open(path);
    const auto* data = reinterpret_cast<const uint8_t*>(file->bytes().data());
    uint64_t sum = 0;
    for (size_t i = 0; i < pattern.size(); ++i) sum += data[i];  // fault every page in
    EXPECT_GT(sum, 0u);
    EXPECT_TRUE(MappedFile::release_pages(data + page / 2, 2 * page));  // holds one whole page
    EXPECT_FALSE(MappedFile::release_pages(data + 1, page / 2));        // no whole page inside
    EXPECT_FALSE(MappedFile::release_pages(data + page, 4 * page));     // runs past the mapping
    EXPECT_TRUE(std::equal(pattern.begin(), pattern.end(), data));      // read back from the file
    EXPECT_TRUE(MappedFile::read_ahead(data + 1, 2 * page));            // any part of a live mapping
    EXPECT_FALSE(MappedFile::read_ahead(data + page, 4 * page));        // runs past it
    EXPECT_TRUE(std::equal(pattern.begin(), pattern.end(), data));      // a hint: the bytes stay
  }
  std::vector<uint8_t> heap(pattern.size() + page);
  uint8_t* aligned = heap.data() + (page - reinterpret_cast<uintptr_t>(heap.data()) % page);
  std::copy(pattern.begin(), pattern.begin() + std::ptrdiff_t(2 * page), aligned);
  EXPECT_FALSE(MappedFile::release_pages(aligned, 2 * page));
  EXPECT_FALSE(MappedFile::read_ahead(aligned, 2 * page));
  EXPECT_TRUE(std::equal(pattern.begin(), pattern.begin() + std::ptrdiff_t(2 * page), aligned));  // not zeroed
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace moe
