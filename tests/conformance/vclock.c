/*
 * vclock: a virtual clock for the whole process, loaded with LD_PRELOAD by litellm_driver.py.
 *
 * LiteLLM 1.110's routing core is native (litellm/rust_bridge/_native.abi3.so); it imports
 * clock_gettime from glibc (`nm -D` shows `U clock_gettime@GLIBC_2.17`), as CPython does for
 * time.time / time.monotonic / time.perf_counter / datetime.now and asyncio's loop.time().
 * Interposing clock_gettime (plus gettimeofday and time) therefore gives Python and the native
 * core one clock. Once enabled (vclock_enable), every wall and monotonic clock reads the virtual
 * time, which only moves when the driver's event loop advances it (vclock_advance_ns) because
 * nothing is runnable. CPU-time clocks stay real.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

static volatile int enabled = 0;
static volatile int64_t now_ns = 0;        /* virtual CLOCK_REALTIME, ns since the epoch */
static volatile int64_t mono_offset_ns = 0; /* CLOCK_MONOTONIC = realtime - offset */

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);
static clock_gettime_fn real_clock_gettime_fn = 0;

static int real_clock_gettime(clockid_t clk, struct timespec *ts) {
    if (!real_clock_gettime_fn) real_clock_gettime_fn = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    return real_clock_gettime_fn(clk, ts);
}

static void fill(struct timespec *ts, int64_t ns) {
    ts->tv_sec = ns / 1000000000LL;
    ts->tv_nsec = ns % 1000000000LL;
}

int clock_gettime(clockid_t clk, struct timespec *ts) {
    if (!enabled || ts == 0) return real_clock_gettime(clk, ts);
    switch (clk) {
    case CLOCK_REALTIME:
    case CLOCK_REALTIME_COARSE:
#ifdef CLOCK_TAI
    case CLOCK_TAI:
#endif
        fill(ts, now_ns);
        return 0;
    case CLOCK_MONOTONIC:
    case CLOCK_MONOTONIC_RAW:
    case CLOCK_MONOTONIC_COARSE:
    case CLOCK_BOOTTIME:
        fill(ts, now_ns - mono_offset_ns);
        return 0;
    default:
        return real_clock_gettime(clk, ts);
    }
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (tv) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    (void)tz;
    return 0;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}

/* Start virtual time at `start_ns` (realtime); the monotonic clock starts at `mono_start_ns`. */
void vclock_enable(int64_t start_ns, int64_t mono_start_ns) {
    now_ns = start_ns;
    mono_offset_ns = start_ns - mono_start_ns;
    __sync_synchronize();
    enabled = 1;
}

void vclock_advance_ns(int64_t by) {
    if (by > 0) __sync_fetch_and_add(&now_ns, by);
}

void vclock_set_ns(int64_t to) {
    if (to > now_ns) now_ns = to;
}

int64_t vclock_now_ns(void) { return now_ns; }
int vclock_enabled(void) { return enabled; }

/* The real monotonic clock, for the driver's own run-time report. */
int64_t vclock_real_ns(void) {
    struct timespec ts;
    real_clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
