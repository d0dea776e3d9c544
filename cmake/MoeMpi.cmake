# MOE_MPI=AUTO builds expert parallelism across processes (mpirun) when CMake finds MPI
# (Debian: libopenmpi-dev); without it the engine builds as before and the MPI tests skip.
set(MOE_MPI AUTO CACHE STRING "Build the MPI launch and exchanges: AUTO (when MPI is found), ON or OFF")
set_property(CACHE MOE_MPI PROPERTY STRINGS AUTO ON OFF)
set(MOE_HAVE_MPI OFF)
if(NOT MOE_MPI STREQUAL "OFF")
  find_package(MPI COMPONENTS C)
  if(MPI_C_FOUND)
    set(MOE_HAVE_MPI ON)
  elseif(MOE_MPI STREQUAL "ON")
    message(FATAL_ERROR "MOE_MPI=ON but no MPI was found (apt-get install libopenmpi-dev openmpi-bin)")
  endif()
endif()
find_program(MOE_MPIRUN NAMES mpirun mpiexec)
message(STATUS "moe: MPI ${MOE_HAVE_MPI} (mpirun: ${MOE_MPIRUN})")
# MOE_HAVE_MPI (0 or 1) for the few targets that read it (the engine, the moe tool): on
# moe_features it would rebuild every object for a macro two targets test.
add_library(moe_mpi_feature INTERFACE)
target_compile_definitions(moe_mpi_feature INTERFACE MOE_HAVE_MPI=$<BOOL:${MOE_HAVE_MPI}>)
