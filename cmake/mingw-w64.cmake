# Cross-compiles proa for 64-bit Windows with mingw-w64; tests run under Wine.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(PROA_MINGW_PREFIX x86_64-w64-mingw32)

# The posix-threads variant: the win32 one has no std::mutex for GoogleTest.
set(CMAKE_C_COMPILER ${PROA_MINGW_PREFIX}-gcc-posix)
set(CMAKE_CXX_COMPILER ${PROA_MINGW_PREFIX}-g++-posix)
set(CMAKE_RC_COMPILER ${PROA_MINGW_PREFIX}-windres)

set(CMAKE_FIND_ROOT_PATH /usr/${PROA_MINGW_PREFIX})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Link the GCC runtime and winpthread statically so that Wine (and a bare
# Windows machine) finds every DLL an executable needs.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static -static-libgcc -static-libstdc++")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static -static-libgcc -static-libstdc++")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "-static -static-libgcc -static-libstdc++")

# try_run and ctest run the .exe files through Wine. Set WINEDEBUG=-all in
# the environment of the run to keep Wine quiet.
find_program(PROA_WINE NAMES wine wine64)
if(PROA_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${PROA_WINE})
endif()
