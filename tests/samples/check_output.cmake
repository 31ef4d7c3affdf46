# Runs a sample and checks its exit code and output. Variables: EMULATOR
# (may be empty), PROGRAM, EXPECT (a regex the output must match) and, when
# set, LINES (how many lines the output must have).
separate_arguments(emulator UNIX_COMMAND "${EMULATOR}")
execute_process(COMMAND ${emulator} "${PROGRAM}" RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
message(STATUS "output:\n${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} exited with ${rc}")
endif()
if(NOT out MATCHES "${EXPECT}")
  message(FATAL_ERROR "output does not match '${EXPECT}'")
endif()
if(DEFINED LINES)
  string(REGEX MATCHALL "\n" newlines "${out}")
  list(LENGTH newlines n)
  if(NOT n EQUAL LINES)
    message(FATAL_ERROR "expected ${LINES} lines, got ${n}")
  endif()
endif()
