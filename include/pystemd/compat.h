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

#define PYSTEMD_LIBSYSTEMD_VERSION LIBSYSTEMD_VERSION

#endif
