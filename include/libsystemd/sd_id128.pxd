# Declarations for <systemd/sd-id128.h>. Build-time only, never imported at run time.
from libc.stdint cimport uint8_t, uint64_t

cdef extern from "systemd/sd-id128.h" nogil:
    ctypedef union sd_id128_t:
        uint8_t bytes[16]
        uint64_t qwords[2]

    enum:
        SD_ID128_STRING_MAX
        SD_ID128_UUID_STRING_MAX

    char *sd_id128_to_string(sd_id128_t id, char s[])
    int sd_id128_from_string(const char *s, sd_id128_t *ret)
    int sd_id128_randomize(sd_id128_t *ret)
    int sd_id128_get_machine(sd_id128_t *ret)
    int sd_id128_get_boot(sd_id128_t *ret)
    int sd_id128_get_invocation(sd_id128_t *ret)
    int sd_id128_get_machine_app_specific(sd_id128_t app_id, sd_id128_t *ret)
    int sd_id128_get_boot_app_specific(sd_id128_t app_id, sd_id128_t *ret)
    int sd_id128_equal(sd_id128_t a, sd_id128_t b)
    int sd_id128_is_null(sd_id128_t a)
