# moe_add_test(NAME SOURCES a.cpp ... LIBS lib ... [LABELS unit|gpu|slow ...] [TIMEOUT s])
# One GoogleTest executable, registered with CTest test by test, labelled and time-limited.
include(GoogleTest)
function(moe_add_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gtest_main moe_warnings)
  gtest_discover_tests(${name} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
                       DISCOVERY_TIMEOUT 60)
endfunction()

# moe_add_fuzzer(NAME SOURCES a.cpp ... LIBS lib ...): a libFuzzer target when MOE_FUZZ is on;
# otherwise the same entry point is linked against a driver that replays the corpus files given
# on the command line, and CTest runs it over the seed corpus so the target never rots.
function(moe_add_fuzzer name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;CORPUS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS})
  if(MOE_FUZZ)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  else()
    target_sources(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests/fuzz/replay_main.cpp)
    if(ARG_CORPUS)
      add_test(NAME ${name}.corpus COMMAND ${name} ${ARG_CORPUS})
      set_tests_properties(${name}.corpus PROPERTIES LABELS "fuzz" TIMEOUT 120)
    endif()
  endif()
endfunction()
