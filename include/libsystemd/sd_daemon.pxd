# Declarations for <systemd/sd-daemon.h>. Build-time only, never imported at run time.
# Calls newer than the oldest libsystemd we build against have -ENOSYS stubs in
# include/pystemd/compat.h (sd_listen_fds_with_names 227, sd_is_socket_sockaddr 233,
# sd_notify_barrier 246).
from libc.stdint cimport uint64_t
from posix.types cimport pid_t

cdef extern from "systemd/sd-daemon.h" nogil:
    enum:
        SD_LISTEN_FDS_START

    int sd_listen_fds(int unset_environment)
    int sd_listen_fds_with_names(int unset_environment, char ***names)
    int sd_is_fifo(int fd, const char *path)
    int sd_is_special(int fd, const char *path)
    int sd_is_socket(int fd, int family, int type, int listening)
    int sd_is_socket_inet(int fd, int family, int type, int listening, unsigned short port)
    int sd_is_socket_sockaddr(int fd, int type, const void *addr, unsigned addr_len, int listening)
    int sd_is_socket_unix(int fd, int type, int listening, const char *path, size_t length)
    int sd_is_mq(int fd, const char *path)
    int sd_notify(int unset_environment, const char *state)
    int sd_pid_notify(pid_t pid, int unset_environment, const char *state)
    int sd_pid_notify_with_fds(pid_t pid, int unset_environment, const char *state, const int *fds, unsigned n_fds)
    int sd_notify_barrier(int unset_environment, uint64_t timeout)
    int sd_booted()
    int sd_watchdog_enabled(int unset_environment, uint64_t *usec)
