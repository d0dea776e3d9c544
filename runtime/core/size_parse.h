#pragma once
// Byte sizes as users write them: "24GiB", "512MB", "1.5G", "4096". Binary and decimal units.
#include <cstdint>
#include <string>
#include <string_view>

namespace moe {

// Throws moe::Error(kInvalidArgument) with the offending text.
uint64_t parse_byte_size(std::string_view text);
// "1.50 GiB", "512.00 MiB", "123 B".
std::string format_bytes(uint64_t bytes);

}  // namespace moe
