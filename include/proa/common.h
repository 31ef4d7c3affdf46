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

#define PROA_VERSION_MAJOR 0
#define PROA_VERSION_MINOR 1
#define PROA_VERSION_PATCH 0

#endif /* PROA_COMMON_H */
