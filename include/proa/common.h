/* Definitions every proa header needs: the export macro and basic includes. */
#ifndef PROA_COMMON_H
#define PROA_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * PROA_API marks the public functions. A static build (and every consumer of
 * the static library) defines PROA_STATIC; the shared build defines
 * PROA_BUILDING so that the functions are exported rather than imported.
 */
#if defined(PROA_STATIC)
#define PROA_API
#elif defined(_WIN32)
#if defined(PROA_BUILDING)
#define PROA_API __declspec(dllexport)
#else
#define PROA_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define PROA_API __attribute__((visibility("default")))
#else
#define PROA_API
#endif

/*
 * Options structs (proa_loop_options, proa_connect_options, ...,
 * proa_addrinfo_hints) can grow without breaking callers built against an
 * older header: each starts with `size_t size`, which its _INIT macro sets
 * to the struct's sizeof, and new fields are only ever appended. The
 * library reads the first `size` bytes over its defaults, so a caller that
 * knows fewer fields gets the defaults for the rest. Always start from the
 * _INIT macro. A size of 0 (a struct not made with the macro), or one
 * larger than the library knows (a header newer than the library), is
 * refused with PROA_EINVAL: the library cannot tell what those bytes ask.
 */

#define PROA_VERSION_MAJOR 0
#define PROA_VERSION_MINOR 1
#define PROA_VERSION_PATCH 0

#endif /* PROA_COMMON_H */
