# Installs the build tree into a fresh prefix, then builds and runs the
# consumer against it twice: through find_package(proa) and through
# pkg-config. Run with cmake -P and the variables BUILD_DIR, SOURCE_DIR,
# WORK_DIR, GENERATOR, C_COMPILER and C_FLAGS.
set(prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${WORK_DIR}")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}")
  endif()
  message(STATUS "${out}")
endfunction()

run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")

# find_package(proa)
run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/consumer" -B "${WORK_DIR}/build"
    -G "${GENERATOR}" "-DCMAKE_PREFIX_PATH=${prefix}"
    "-DCMAKE_C_COMPILER=${C_COMPILER}" "-DCMAKE_C_FLAGS=${C_FLAGS}")
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
set(ENV{LD_LIBRARY_PATH} "${prefix}/lib:$ENV{LD_LIBRARY_PATH}")
run("${WORK_DIR}/build/consumer")
run("${WORK_DIR}/build/consumer_static")

# pkg-config
find_program(PKG_CONFIG pkg-config REQUIRED)
file(GLOB pcdir "${prefix}/lib*/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "${pcdir}")
execute_process(COMMAND ${PKG_CONFIG} --cflags --libs --static proa
                OUTPUT_VARIABLE flags RESULT_VARIABLE rc
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config does not know proa")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
separate_arguments(cflags UNIX_COMMAND "${C_FLAGS}")
run(${C_COMPILER} ${cflags} "${SOURCE_DIR}/tests/consumer/main.c" -o
    "${WORK_DIR}/consumer_pc" -static-libgcc ${flags})
run("${WORK_DIR}/consumer_pc")
