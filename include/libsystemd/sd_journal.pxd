# Declarations for <systemd/sd-journal.h>. Build-time only, never imported at run time.
from libc.stdint cimport uint64_t
from posix.uio cimport iovec
from libsystemd.sd_id128 cimport sd_id128_t

# Without this, sd-journal.h turns sd_journal_send*/print*/perror into macros that
# add the *C* file and line of the caller (pystemd/_jsend.c:1234). It must come
# before the header is first included, hence before the extern block below.
cdef extern from *:
    """
    #ifndef SD_JOURNAL_SUPPRESS_LOCATION
    #define SD_JOURNAL_SUPPRESS_LOCATION 1
    #endif
    """

cdef extern from "systemd/sd-journal.h" nogil:
    ctypedef struct sd_journal:
        pass

    enum:
        SD_JOURNAL_LOCAL_ONLY
        SD_JOURNAL_RUNTIME_ONLY
        SD_JOURNAL_SYSTEM
        SD_JOURNAL_CURRENT_USER
        SD_JOURNAL_OS_ROOT
        SD_JOURNAL_ALL_NAMESPACES
        SD_JOURNAL_INCLUDE_DEFAULT_NAMESPACE

    enum:
        SD_JOURNAL_NOP
        SD_JOURNAL_APPEND
        SD_JOURNAL_INVALIDATE

    # writing
    int sd_journal_sendv(const iovec *iov, int n)
    int sd_journal_sendv_with_location(const char *file, const char *line, const char *func,
                                       const iovec *iov, int n)
    int sd_journal_stream_fd(const char *identifier, int priority, int level_prefix)

    # opening
    int sd_journal_open(sd_journal **ret, int flags)
    int sd_journal_open_namespace(sd_journal **ret, const char *name_space, int flags)
    int sd_journal_open_directory(sd_journal **ret, const char *path, int flags)
    int sd_journal_open_directory_fd(sd_journal **ret, int fd, int flags)
    int sd_journal_open_files(sd_journal **ret, const char **paths, int flags)
    int sd_journal_open_files_fd(sd_journal **ret, int *fds, unsigned n_fds, int flags)
    void sd_journal_close(sd_journal *j)

    # moving
    int sd_journal_previous(sd_journal *j)
    int sd_journal_next(sd_journal *j)
    int sd_journal_previous_skip(sd_journal *j, uint64_t skip)
    int sd_journal_next_skip(sd_journal *j, uint64_t skip)

    # reading the current entry
    int sd_journal_get_realtime_usec(sd_journal *j, uint64_t *ret)
    int sd_journal_get_monotonic_usec(sd_journal *j, uint64_t *ret, sd_id128_t *ret_boot_id)
    int sd_journal_set_data_threshold(sd_journal *j, size_t sz)
    int sd_journal_get_data_threshold(sd_journal *j, size_t *sz)
    int sd_journal_get_data(sd_journal *j, const char *field, const void **data, size_t *l)
    int sd_journal_enumerate_data(sd_journal *j, const void **data, size_t *l)
    int sd_journal_enumerate_available_data(sd_journal *j, const void **data, size_t *l)
    void sd_journal_restart_data(sd_journal *j)

    # matches
    int sd_journal_add_match(sd_journal *j, const void *data, size_t size)
    int sd_journal_add_disjunction(sd_journal *j)
    int sd_journal_add_conjunction(sd_journal *j)
    void sd_journal_flush_matches(sd_journal *j)

    # seeking and cursors
    int sd_journal_seek_head(sd_journal *j)
    int sd_journal_seek_tail(sd_journal *j)
    int sd_journal_seek_monotonic_usec(sd_journal *j, sd_id128_t boot_id, uint64_t usec)
    int sd_journal_seek_realtime_usec(sd_journal *j, uint64_t usec)
    int sd_journal_seek_cursor(sd_journal *j, const char *cursor)
    int sd_journal_get_cursor(sd_journal *j, char **cursor)
    int sd_journal_test_cursor(sd_journal *j, const char *cursor)
    int sd_journal_get_cutoff_realtime_usec(sd_journal *j, uint64_t *start, uint64_t *end)
    int sd_journal_get_cutoff_monotonic_usec(sd_journal *j, const sd_id128_t boot_id,
                                             uint64_t *start, uint64_t *end)
    int sd_journal_get_usage(sd_journal *j, uint64_t *bytes)

    # unique values and field names
    int sd_journal_query_unique(sd_journal *j, const char *field)
    int sd_journal_enumerate_unique(sd_journal *j, const void **data, size_t *l)
    int sd_journal_enumerate_available_unique(sd_journal *j, const void **data, size_t *l)
    void sd_journal_restart_unique(sd_journal *j)
    int sd_journal_enumerate_fields(sd_journal *j, const char **field)
    void sd_journal_restart_fields(sd_journal *j)

    # waiting for changes
    int sd_journal_get_fd(sd_journal *j)
    int sd_journal_get_events(sd_journal *j)
    int sd_journal_get_timeout(sd_journal *j, uint64_t *timeout_usec)
    int sd_journal_process(sd_journal *j)
    int sd_journal_wait(sd_journal *j, uint64_t timeout_usec)
    int sd_journal_reliable_fd(sd_journal *j)

    # catalog and files
    int sd_journal_get_catalog(sd_journal *j, char **text)
    int sd_journal_get_catalog_for_message_id(sd_id128_t id, char **text)
    int sd_journal_has_runtime_files(sd_journal *j)
    int sd_journal_has_persistent_files(sd_journal *j)


# Calls newer than some supported libsystemd versions: compat.h turns them into
# -ENOSYS stubs when LIBSYSTEMD_VERSION is older than the call.
cdef extern from "pystemd/compat.h" nogil:
    int sd_journal_get_seqnum(sd_journal *j, uint64_t *ret_seqnum, sd_id128_t *ret_seqnum_id)
    int sd_journal_step_one(sd_journal *j, int advanced)
