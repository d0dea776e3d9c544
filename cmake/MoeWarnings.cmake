# Warnings for our own targets; third-party headers come in as SYSTEM.
add_library(moe_warnings INTERFACE)
target_compile_options(moe_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow=local -Wno-missing-field-initializers>)
