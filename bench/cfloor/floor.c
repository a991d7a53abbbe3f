/* The floor: raw sd-bus loops, timed inside C.
 *
 * Loaded with ctypes by bench/peers/cfloor.py (compiled at bench time by
 * bench/common.py:build_cfloor). Every loop decodes the whole reply (every
 * basic value is read, every container entered), so it does the work a
 * binding must do, minus building Python objects. Timings use
 * CLOCK_MONOTONIC (wall) and CLOCK_THREAD_CPUTIME_ID (this thread's CPU).
 *
 * Return values: 0 or a positive count on success, a negative errno on failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-bus.h>

typedef struct {
    double wall;   /* seconds */
    double cpu;    /* seconds, this thread */
    long failed;   /* calls that returned an error (pipelined loop) */
    long ok;
} floor_timing;

static double now(clockid_t clk) {
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Read everything left in the current container of m. */
static int consume(sd_bus_message *m) {
    for (;;) {
        char type;
        const char *contents;
        int r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
            return r;
        if (r == 0)
            return 0;
        if (type == SD_BUS_TYPE_ARRAY || type == SD_BUS_TYPE_STRUCT ||
            type == SD_BUS_TYPE_VARIANT || type == SD_BUS_TYPE_DICT_ENTRY) {
            r = sd_bus_message_enter_container(m, type, contents);
            if (r < 0)
                return r;
            r = consume(m);
            if (r < 0)
                return r;
            r = sd_bus_message_exit_container(m);
            if (r < 0)
                return r;
        } else {
            union {
                uint64_t u;
                double d;
                const char *s;
                int i;
            } v;
            r = sd_bus_message_read_basic(m, type, &v);
            if (r < 0)
                return r;
        }
    }
}

/* Open a connection: a bus client unless peer != 0 (systemd's private socket). */
int floor_open(const char *address, int peer, sd_bus **out) {
    sd_bus *bus = NULL;
    int r = sd_bus_new(&bus);
    if (r < 0)
        return r;
    r = sd_bus_set_address(bus, address);
    if (r >= 0)
        r = sd_bus_set_bus_client(bus, !peer);
    if (r >= 0)
        r = sd_bus_start(bus);
    if (r < 0) {
        sd_bus_unref(bus);
        return r;
    }
    *out = bus;
    return 0;
}

void floor_close(sd_bus *bus) {
    sd_bus_flush_close_unref(bus);
}

/* n × Properties.Get(iface, prop), reply decoded. */
int floor_get(sd_bus *bus, const char *dest, const char *path, const char *iface,
              const char *prop, long n, floor_timing *t) {
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
    for (long i = 0; i < n; i++) {
        sd_bus_error err = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r = sd_bus_call_method(bus, dest, path, "org.freedesktop.DBus.Properties", "Get",
                                   &err, &reply, "ss", iface, prop);
        sd_bus_error_free(&err);
        if (r < 0)
            return r;
        r = consume(reply);
        sd_bus_message_unref(reply);
        if (r < 0)
            return r;
    }
    t->wall = now(CLOCK_MONOTONIC) - w0;
    t->cpu = now(CLOCK_THREAD_CPUTIME_ID) - c0;
    t->ok = n;
    t->failed = 0;
    return 0;
}

/* n × a method call with no argument or one string argument (arg may be NULL). */
int floor_call(sd_bus *bus, const char *dest, const char *path, const char *iface,
               const char *member, const char *arg, long n, floor_timing *t) {
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
    for (long i = 0; i < n; i++) {
        sd_bus_error err = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r;
        if (arg)
            r = sd_bus_call_method(bus, dest, path, iface, member, &err, &reply, "s", arg);
        else
            r = sd_bus_call_method(bus, dest, path, iface, member, &err, &reply, NULL);
        sd_bus_error_free(&err);
        if (r < 0)
            return r;
        r = consume(reply);
        sd_bus_message_unref(reply);
        if (r < 0)
            return r;
    }
    t->wall = now(CLOCK_MONOTONIC) - w0;
    t->cpu = now(CLOCK_THREAD_CPUTIME_ID) - c0;
    t->ok = n;
    t->failed = 0;
    return 0;
}

typedef struct {
    long done, ok, failed, in_flight;
} pipe_state;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
    pipe_state *st = userdata;
    (void)ret_error;
    st->done++;
    st->in_flight--;
    if (sd_bus_message_is_method_error(m, NULL))
        st->failed++;
    else if (consume(m) < 0)
        st->failed++;
    else
        st->ok++;
    return 1;
}

/* n × Properties.Get sent with sd_bus_call_method_async, at most `window` in flight. */
int floor_get_pipelined(sd_bus *bus, const char *dest, const char *path, const char *iface,
                        const char *prop, long n, long window, floor_timing *t) {
    pipe_state st = {0, 0, 0, 0};
    long sent = 0;
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
    while (st.done < n) {
        while (sent < n && st.in_flight < window) {
            int r = sd_bus_call_method_async(bus, NULL, dest, path,
                                             "org.freedesktop.DBus.Properties", "Get",
                                             on_reply, &st, "ss", iface, prop);
            if (r < 0)
                return r;
            sent++;
            st.in_flight++;
        }
        int r = sd_bus_process(bus, NULL);
        if (r < 0)
            return r;
        if (r > 0)
            continue;
        r = sd_bus_wait(bus, UINT64_MAX);
        if (r < 0 && r != -EINTR)
            return r;
    }
    t->wall = now(CLOCK_MONOTONIC) - w0;
    t->cpu = now(CLOCK_THREAD_CPUTIME_ID) - c0;
    t->ok = st.ok;
    t->failed = st.failed;
    return 0;
}
