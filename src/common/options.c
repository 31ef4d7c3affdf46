/* Reading a caller's options struct, whatever version of it the caller has. */
#include <string.h>

#include "internal.h"

/*
 * Every public options struct starts with `size_t size`, which its _INIT
 * macro sets to the sizeof the caller compiled against. A caller built
 * against an older header passes a smaller struct: its fields are copied
 * over the defaults in `dst` and the fields it does not know keep their
 * defaults. A size below that of the size field itself (0: not made with
 * the _INIT macro) or above what this library knows (a newer header: the
 * library cannot tell what the extra fields ask for) is PROA_EINVAL.
 */
int proa__options_read(void *dst, size_t known, const void *src) {
  size_t size;
  if (!src)
    return 0;
  memcpy(&size, src, sizeof size);
  if (size < sizeof size || size > known)
    return PROA_EINVAL;
  memcpy(dst, src, size);
  memcpy(dst, &known, sizeof known); /* the copy is this version's struct */
  return 0;
}
