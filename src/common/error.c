/* proa_strerror() and proa_err_name(), generated from PROA_ERROR_TABLE. */
#include "internal.h"

const char *proa_strerror(int err) {
  switch (err) {
  case 0:
    return "success";
#define PROA__ERROR_TEXT(name, num, text)                                      \
  case num:                                                                    \
    return text;
    PROA_ERROR_TABLE(PROA__ERROR_TEXT)
#undef PROA__ERROR_TEXT
  default:
    return "unknown error";
  }
}

const char *proa_err_name(int err) {
  switch (err) {
  case 0:
    return "OK";
#define PROA__ERROR_NAME(name, num, text)                                      \
  case num:                                                                    \
    return #name;
    PROA_ERROR_TABLE(PROA__ERROR_NAME)
#undef PROA__ERROR_NAME
  default:
    return "EUNKNOWN";
  }
}
