/* proa: a proactor event loop for C (the umbrella header). */
#ifndef PROA_H
#define PROA_H

#include "proa/common.h"
#include "proa/datagram.h"
#include "proa/error.h"
#include "proa/exception.h"
#include "proa/executor.h"
#include "proa/future.h"
#include "proa/loop.h"
#include "proa/net.h"
#include "proa/pipe.h"
#include "proa/signal.h"
#include "proa/stream.h"
#include "proa/streams.h"
#include "proa/task.h"

#endif /* PROA_H */
