/* Filling sd_bus_vtable arrays at run time, for pystemd/_serve.pyx.
 *
 * sd_bus_vtable is a struct with bit-fields and a union, meant to be written
 * with the SD_BUS_* initializer macros of <systemd/sd-bus-vtable.h>. Cython
 * can express neither, so each helper below fills one zeroed array slot
 * field by field, exactly as the named macro would (sd-bus requires the
 * unused bytes of the union to be zero, see the header, which a copied
 * initializer does not guarantee).
 *
 * The strings passed in (member, signature, names) must outlive the vtable:
 * the caller keeps them in bytes objects owned by the export.
 */
#ifndef PYSTEMD_VTABLE_H
#define PYSTEMD_VTABLE_H

#include <stdint.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-bus-vtable.h>

static inline void pystemd_vt_start(sd_bus_vtable *v, uint64_t flags) {
        /* as SD_BUS_VTABLE_START(flags) */
        memset(v, 0, sizeof(*v));
        v->type = _SD_BUS_VTABLE_START;
        v->flags = flags;
        v->x.start.element_size = sizeof(sd_bus_vtable);
        v->x.start.features = _SD_BUS_VTABLE_PARAM_NAMES;
        v->x.start.vtable_format_reference = &sd_bus_object_vtable_format;
}

static inline void pystemd_vt_end(sd_bus_vtable *v) {
        /* as SD_BUS_VTABLE_END */
        memset(v, 0, sizeof(*v));
        v->type = _SD_BUS_VTABLE_END;
}

/* names: the in-argument names then the out-argument names, each followed by
 * a NUL, the whole list followed by one more NUL (or "" for no names). As
 * SD_BUS_METHOD_WITH_NAMES_OFFSET. */
static inline void pystemd_vt_method(sd_bus_vtable *v, const char *member, const char *signature,
                                     const char *result, const char *names,
                                     sd_bus_message_handler_t handler, size_t offset,
                                     uint64_t flags) {
        memset(v, 0, sizeof(*v));
        v->type = _SD_BUS_VTABLE_METHOD;
        v->flags = flags;
        v->x.method.member = member;
        v->x.method.signature = signature;
        v->x.method.result = result;
        v->x.method.handler = handler;
        v->x.method.offset = offset;
        v->x.method.names = names;
}

/* As SD_BUS_SIGNAL_WITH_NAMES. */
static inline void pystemd_vt_signal(sd_bus_vtable *v, const char *member, const char *signature,
                                     const char *names, uint64_t flags) {
        memset(v, 0, sizeof(*v));
        v->type = _SD_BUS_VTABLE_SIGNAL;
        v->flags = flags;
        v->x.signal.member = member;
        v->x.signal.signature = signature;
        v->x.signal.names = names;
}

/* As SD_BUS_PROPERTY, or SD_BUS_WRITABLE_PROPERTY when set is not NULL. */
static inline void pystemd_vt_property(sd_bus_vtable *v, const char *member, const char *signature,
                                       sd_bus_property_get_t get, sd_bus_property_set_t set,
                                       size_t offset, uint64_t flags) {
        memset(v, 0, sizeof(*v));
        v->type = set ? _SD_BUS_VTABLE_WRITABLE_PROPERTY : _SD_BUS_VTABLE_PROPERTY;
        v->flags = flags;
        v->x.property.member = member;
        v->x.property.signature = signature;
        v->x.property.get = get;
        v->x.property.set = set;
        v->x.property.offset = offset;
}

/* The per-member record the vtable's offsets point at: sd-bus hands a method
 * handler or property callback (userdata + offset), i.e. &entries[i]. */
typedef struct {
        void *export;   /* the _Export object (borrowed; the slot owns one reference) */
        void *member;   /* the member description (borrowed; the export keeps it alive) */
} pystemd_vt_entry;

#endif
