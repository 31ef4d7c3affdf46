# Cross-compiles proa for 64-bit ARM Linux; tests run under qemu-user.
# Used by CI to keep the aarch64 task switch tested on x86-64 machines.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# ctest runs the binaries through qemu, with the target's libraries.
find_program(PROA_QEMU qemu-aarch64)
if(PROA_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${PROA_QEMU} -L /usr/aarch64-linux-gnu)
endif()
