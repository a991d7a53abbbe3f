/* Version gaps in libsystemd, as C.
 *
 * setup.py defines LIBSYSTEMD_VERSION (the major version pkg-config reports).
 * A call that the installed libsystemd is too old to have becomes a static
 * inline stub returning -ENOSYS, so the Cython layer compiles everywhere and
 * the one error-check function turns the stub's answer into
 * OSError(ENOSYS, ...) at call time. No Cython IF/DEF is used.
 */
#ifndef PYSTEMD_COMPAT_H
#define PYSTEMD_COMPAT_H

#include <errno.h>
#include <stdint.h>
#include <systemd/sd-id128.h>
#include <systemd/sd-journal.h>

#ifndef LIBSYSTEMD_VERSION
#error "LIBSYSTEMD_VERSION must be defined by setup.py"
#endif

#if LIBSYSTEMD_VERSION < 254
static inline int sd_journal_get_seqnum(sd_journal *j, uint64_t *ret_seqnum, sd_id128_t *ret_seqnum_id) {
        (void) j; (void) ret_seqnum; (void) ret_seqnum_id;
        return -ENOSYS;
}
static inline int sd_journal_step_one(sd_journal *j, int advanced) {
        (void) j; (void) advanced;
        return -ENOSYS;
}
#endif

/* sd-daemon */
#include <systemd/sd-daemon.h>

#if LIBSYSTEMD_VERSION < 227
static inline int sd_listen_fds_with_names(int unset_environment, char ***names) {
        (void) unset_environment; (void) names;
        return -ENOSYS;
}
#endif
#if LIBSYSTEMD_VERSION < 233
static inline int sd_is_socket_sockaddr(int fd, int type, const struct sockaddr *addr, unsigned addr_len, int listening) {
        (void) fd; (void) type; (void) addr; (void) addr_len; (void) listening;
        return -ENOSYS;
}
#endif
#if LIBSYSTEMD_VERSION < 246
static inline int sd_notify_barrier(int unset_environment, uint64_t timeout) {
        (void) unset_environment; (void) timeout;
        return -ENOSYS;
}
#endif

#define PYSTEMD_LIBSYSTEMD_VERSION LIBSYSTEMD_VERSION

#endif
