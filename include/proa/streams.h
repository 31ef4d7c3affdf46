/* Streams for tasks: asyncio's open_connection / start_server, reader+writer.
 */
#ifndef PROA_STREAMS_H
#define PROA_STREAMS_H

#include "proa/pipe.h"
#include "proa/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A buffered TCP connection with asyncio's StreamReader and StreamWriter
 * operations on one object. The read operations return futures (await them
 * in a task with proa_await) whose result is a proa_bytes owned by the
 * future. One read may be pending at a time. Loop thread only.
 */
typedef struct proa_stream proa_stream;

/* Bytes read from a stream: `len` bytes at `data`. */
typedef struct proa_bytes {
  size_t len;
  unsigned char data[1]; /* len bytes (the array is longer than 1) */
} proa_bytes;

/* The default buffer limit (asyncio's): 64 KiB. */
#define PROA_STREAM_LIMIT_DEFAULT 65536

/*
 * Connects (see proa_create_connection for host, port and opts) and stores
 * in *out a future whose result is the proa_stream (owned by the future:
 * take a reference with proa_stream_ref to keep it). `limit` bounds a line
 * or a readuntil chunk (0: the default); more than twice that much unread
 * data pauses reading from the socket.
 */
PROA_API int proa_open_connection(proa_loop *loop, const char *host, int port,
                                  const proa_connect_options *opts,
                                  size_t limit, proa_future **out);

/*
 * Runs for each accepted connection, as a new task; the stream is borrowed
 * for the handler's duration and closed when it returns.
 */
typedef int (*proa_stream_handler)(proa_stream *stream, void *arg);

/*
 * Starts a server (see proa_create_server) whose connections are handed to
 * handler(stream, arg), each in a task of its own. *out receives a future
 * whose result is the proa_server.
 */
PROA_API int proa_start_server(proa_loop *loop, proa_stream_handler handler,
                               void *arg, const char *host, int port,
                               const proa_server_options *opts, size_t limit,
                               proa_future **out);

/*
 * The same over local IPC (proa/pipe.h): a Unix-domain socket by path, or
 * the portable local server (a named pipe on Windows). Arguments and errors
 * as proa_create_unix_connection / _server and proa_create_pipe_connection
 * / _server, `limit` as above.
 */
PROA_API int proa_open_unix_connection(proa_loop *loop, const char *path,
                                       const proa_unix_connect_options *opts,
                                       size_t limit, proa_future **out);
PROA_API int proa_start_unix_server(proa_loop *loop,
                                    proa_stream_handler handler, void *arg,
                                    const char *path,
                                    const proa_unix_server_options *opts,
                                    size_t limit, proa_future **out);
PROA_API int proa_open_pipe_connection(proa_loop *loop, const char *name,
                                       const proa_pipe_connect_options *opts,
                                       size_t limit, proa_future **out);
PROA_API int proa_start_pipe_server(proa_loop *loop,
                                    proa_stream_handler handler, void *arg,
                                    const char *name,
                                    const proa_pipe_server_options *opts,
                                    size_t limit, proa_future **out);

PROA_API proa_stream *proa_stream_ref(proa_stream *s);
PROA_API void proa_stream_unref(proa_stream *s);

/* ---- reading: each stores a future in *out ---- */

/*
 * Up to n bytes (n > 0): what is buffered, or the next bytes to arrive; an
 * empty result at end of stream. Errors through the future: the
 * connection's error. Immediate errors: PROA_EINVAL, PROA_EBUSY (another read
 * pending), PROA_ENOMEM.
 */
PROA_API int proa_stream_read(proa_stream *s, size_t n, proa_future **out);

/*
 * Exactly n bytes; PROA_EOF through the future if the stream ends first
 * (the partial bytes are dropped; the message says how many arrived).
 */
PROA_API int proa_stream_readexactly(proa_stream *s, size_t n,
                                     proa_future **out);

/*
 * Bytes up to and including `sep` (seplen > 0). PROA_EOF if the stream ends
 * first (the partial data is dropped); PROA_ELIMIT if no separator is found
 * within the limit, or the chunk would be longer than the limit (the data
 * stays buffered).
 */
PROA_API int proa_stream_readuntil(proa_stream *s, const void *sep,
                                   size_t seplen, proa_future **out);

/*
 * A line ending in '\n' (included); at end of stream the partial last line
 * (possibly empty). PROA_ELIMIT for a line longer than the limit: the line
 * is dropped (up to its '\n', or all that is buffered).
 */
PROA_API int proa_stream_readline(proa_stream *s, proa_future **out);

/* End of stream reached and nothing left buffered. */
PROA_API bool proa_stream_at_eof(const proa_stream *s);

/* ---- writing ---- */

/* Queues a copy of the bytes (proa_transport_write). */
PROA_API int proa_stream_write(proa_stream *s, const void *data, size_t len);

/*
 * A future that completes once the write buffer is at or below its
 * low-water mark (at once if it already is), or with the connection's
 * error if it is lost. Await it after writing to respect flow control.
 */
PROA_API int proa_stream_drain(proa_stream *s, proa_future **out);

PROA_API int proa_stream_write_eof(proa_stream *s);

/* Closes the connection (flushing what is written). Idempotent. */
PROA_API void proa_stream_close(proa_stream *s);

/* A future that completes once the connection is closed. */
PROA_API int proa_stream_wait_closed(proa_stream *s, proa_future **out);

/* The underlying transport (borrowed), e.g. for its addresses. */
PROA_API proa_transport *proa_stream_transport(const proa_stream *s);

#ifdef __cplusplus
}
#endif

#endif /* PROA_STREAMS_H */
