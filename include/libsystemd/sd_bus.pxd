# Declarations for <systemd/sd-bus.h> (with sd-bus-protocol.h and sd-bus-vtable.h).
# Build-time only, never imported at run time.
from libc.stdint cimport uint8_t, uint64_t, int64_t, uint32_t
from posix.types cimport pid_t, uid_t, gid_t
from libsystemd.sd_id128 cimport sd_id128_t

cdef extern from "systemd/sd-bus.h" nogil:
    ctypedef struct sd_bus:
        pass
    ctypedef struct sd_bus_message:
        pass
    ctypedef struct sd_bus_slot:
        pass
    ctypedef struct sd_bus_creds:
        pass
    ctypedef struct sd_bus_track:
        pass
    ctypedef struct sd_bus_vtable:
        pass

    ctypedef struct sd_bus_error:
        const char *name
        const char *message
        int _need_free

    ctypedef struct sd_bus_error_map:
        const char *name
        int code

    const sd_bus_error SD_BUS_ERROR_NULL

    ctypedef int (*sd_bus_message_handler_t)(sd_bus_message *m, void *userdata,
                                             sd_bus_error *ret_error) noexcept
    ctypedef int (*sd_bus_property_get_t)(sd_bus *bus, const char *path, const char *interface,
                                          const char *property, sd_bus_message *reply,
                                          void *userdata, sd_bus_error *ret_error) noexcept
    ctypedef int (*sd_bus_property_set_t)(sd_bus *bus, const char *path, const char *interface,
                                          const char *property, sd_bus_message *value,
                                          void *userdata, sd_bus_error *ret_error) noexcept
    ctypedef int (*sd_bus_object_find_t)(sd_bus *bus, const char *path, const char *interface,
                                         void *userdata, void **ret_found,
                                         sd_bus_error *ret_error) noexcept
    ctypedef int (*sd_bus_node_enumerator_t)(sd_bus *bus, const char *prefix, void *userdata,
                                             char ***ret_nodes, sd_bus_error *ret_error) noexcept
    ctypedef void (*sd_bus_destroy_t)(void *userdata) noexcept

    # message types
    enum:
        SD_BUS_MESSAGE_METHOD_CALL
        SD_BUS_MESSAGE_METHOD_RETURN
        SD_BUS_MESSAGE_METHOD_ERROR
        SD_BUS_MESSAGE_SIGNAL

    # name flags
    enum:
        SD_BUS_NAME_REPLACE_EXISTING
        SD_BUS_NAME_ALLOW_REPLACEMENT
        SD_BUS_NAME_QUEUE

    # vtable flags
    enum:
        SD_BUS_VTABLE_DEPRECATED
        SD_BUS_VTABLE_HIDDEN
        SD_BUS_VTABLE_UNPRIVILEGED
        SD_BUS_VTABLE_METHOD_NO_REPLY
        SD_BUS_VTABLE_PROPERTY_CONST
        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE
        SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION
        SD_BUS_VTABLE_PROPERTY_EXPLICIT
        SD_BUS_VTABLE_SENSITIVE

    # validation
    int sd_bus_interface_name_is_valid(const char *p)
    int sd_bus_service_name_is_valid(const char *p)
    int sd_bus_member_name_is_valid(const char *p)
    int sd_bus_object_path_is_valid(const char *p)

    # connections
    int sd_bus_default(sd_bus **ret)
    int sd_bus_default_user(sd_bus **ret)
    int sd_bus_default_system(sd_bus **ret)
    int sd_bus_open(sd_bus **ret)
    int sd_bus_open_with_description(sd_bus **ret, const char *description)
    int sd_bus_open_user(sd_bus **ret)
    int sd_bus_open_user_with_description(sd_bus **ret, const char *description)
    int sd_bus_open_user_machine(sd_bus **ret, const char *machine)
    int sd_bus_open_system(sd_bus **ret)
    int sd_bus_open_system_with_description(sd_bus **ret, const char *description)
    int sd_bus_open_system_remote(sd_bus **ret, const char *host)
    int sd_bus_open_system_machine(sd_bus **ret, const char *machine)
    int sd_bus_new(sd_bus **ret)
    int sd_bus_set_address(sd_bus *bus, const char *address)
    int sd_bus_set_fd(sd_bus *bus, int input_fd, int output_fd)
    int sd_bus_set_exec(sd_bus *bus, const char *path, char *const *argv)
    int sd_bus_get_address(sd_bus *bus, const char **address)
    int sd_bus_set_bus_client(sd_bus *bus, int b)
    int sd_bus_is_bus_client(sd_bus *bus)
    int sd_bus_set_server(sd_bus *bus, int b, sd_id128_t bus_id)
    int sd_bus_is_server(sd_bus *bus)
    int sd_bus_set_anonymous(sd_bus *bus, int b)
    int sd_bus_set_trusted(sd_bus *bus, int b)
    int sd_bus_set_monitor(sd_bus *bus, int b)
    int sd_bus_set_description(sd_bus *bus, const char *description)
    int sd_bus_get_description(sd_bus *bus, const char **description)
    int sd_bus_negotiate_creds(sd_bus *bus, int b, uint64_t creds_mask)
    int sd_bus_negotiate_timestamp(sd_bus *bus, int b)
    int sd_bus_negotiate_fds(sd_bus *bus, int b)
    int sd_bus_can_send(sd_bus *bus, char type)
    int sd_bus_set_allow_interactive_authorization(sd_bus *bus, int b)
    int sd_bus_get_allow_interactive_authorization(sd_bus *bus)
    int sd_bus_set_exit_on_disconnect(sd_bus *bus, int b)
    int sd_bus_set_close_on_exit(sd_bus *bus, int b)
    int sd_bus_set_watch_bind(sd_bus *bus, int b)
    int sd_bus_set_connected_signal(sd_bus *bus, int b)
    int sd_bus_set_sender(sd_bus *bus, const char *sender)
    int sd_bus_start(sd_bus *bus)
    void sd_bus_close(sd_bus *bus)
    sd_bus *sd_bus_ref(sd_bus *bus)
    sd_bus *sd_bus_unref(sd_bus *bus)
    sd_bus *sd_bus_close_unref(sd_bus *bus)
    sd_bus *sd_bus_flush_close_unref(sd_bus *bus)
    int sd_bus_is_open(sd_bus *bus)
    int sd_bus_is_ready(sd_bus *bus)
    int sd_bus_get_bus_id(sd_bus *bus, sd_id128_t *id)
    int sd_bus_get_scope(sd_bus *bus, const char **scope)
    int sd_bus_get_tid(sd_bus *bus, pid_t *tid)
    int sd_bus_get_unique_name(sd_bus *bus, const char **unique)

    # I/O
    int sd_bus_send(sd_bus *bus, sd_bus_message *m, uint64_t *cookie)
    int sd_bus_send_to(sd_bus *bus, sd_bus_message *m, const char *destination, uint64_t *cookie)
    int sd_bus_call(sd_bus *bus, sd_bus_message *m, uint64_t usec, sd_bus_error *ret_error,
                    sd_bus_message **reply)
    int sd_bus_call_async(sd_bus *bus, sd_bus_slot **slot, sd_bus_message *m,
                          sd_bus_message_handler_t callback, void *userdata, uint64_t usec)
    int sd_bus_get_fd(sd_bus *bus)
    int sd_bus_get_events(sd_bus *bus)
    int sd_bus_get_timeout(sd_bus *bus, uint64_t *timeout_usec)
    int sd_bus_process(sd_bus *bus, sd_bus_message **r)
    int sd_bus_wait(sd_bus *bus, uint64_t timeout_usec)
    int sd_bus_flush(sd_bus *bus)
    int sd_bus_enqueue_for_read(sd_bus *bus, sd_bus_message *m)
    sd_bus_slot *sd_bus_get_current_slot(sd_bus *bus)
    sd_bus_message *sd_bus_get_current_message(sd_bus *bus)
    int sd_bus_get_n_queued_read(sd_bus *bus, uint64_t *ret)
    int sd_bus_get_n_queued_write(sd_bus *bus, uint64_t *ret)
    int sd_bus_set_method_call_timeout(sd_bus *bus, uint64_t usec)
    int sd_bus_get_method_call_timeout(sd_bus *bus, uint64_t *ret)

    # matches, filters, objects
    int sd_bus_add_filter(sd_bus *bus, sd_bus_slot **slot, sd_bus_message_handler_t callback,
                          void *userdata)
    int sd_bus_add_match(sd_bus *bus, sd_bus_slot **slot, const char *match,
                         sd_bus_message_handler_t callback, void *userdata)
    int sd_bus_add_match_async(sd_bus *bus, sd_bus_slot **slot, const char *match,
                               sd_bus_message_handler_t callback,
                               sd_bus_message_handler_t install_callback, void *userdata)
    int sd_bus_match_signal(sd_bus *bus, sd_bus_slot **ret, const char *sender, const char *path,
                            const char *interface, const char *member,
                            sd_bus_message_handler_t callback, void *userdata)
    int sd_bus_add_object(sd_bus *bus, sd_bus_slot **slot, const char *path,
                          sd_bus_message_handler_t callback, void *userdata)
    int sd_bus_add_fallback(sd_bus *bus, sd_bus_slot **slot, const char *prefix,
                            sd_bus_message_handler_t callback, void *userdata)
    int sd_bus_add_object_vtable(sd_bus *bus, sd_bus_slot **slot, const char *path,
                                 const char *interface, const sd_bus_vtable *vtable, void *userdata)
    int sd_bus_add_fallback_vtable(sd_bus *bus, sd_bus_slot **slot, const char *prefix,
                                   const char *interface, const sd_bus_vtable *vtable,
                                   sd_bus_object_find_t find, void *userdata)
    int sd_bus_add_node_enumerator(sd_bus *bus, sd_bus_slot **slot, const char *path,
                                   sd_bus_node_enumerator_t callback, void *userdata)
    int sd_bus_add_object_manager(sd_bus *bus, sd_bus_slot **slot, const char *path)

    # slots
    sd_bus_slot *sd_bus_slot_ref(sd_bus_slot *slot)
    sd_bus_slot *sd_bus_slot_unref(sd_bus_slot *slot)
    sd_bus *sd_bus_slot_get_bus(sd_bus_slot *slot)
    void *sd_bus_slot_get_userdata(sd_bus_slot *slot)
    void *sd_bus_slot_set_userdata(sd_bus_slot *slot, void *userdata)
    int sd_bus_slot_set_description(sd_bus_slot *slot, const char *description)
    int sd_bus_slot_get_floating(sd_bus_slot *slot)
    int sd_bus_slot_set_floating(sd_bus_slot *slot, int b)
    int sd_bus_slot_set_destroy_callback(sd_bus_slot *s, sd_bus_destroy_t callback)
    sd_bus_message *sd_bus_slot_get_current_message(sd_bus_slot *slot)

    # messages
    int sd_bus_message_new(sd_bus *bus, sd_bus_message **m, uint8_t type)
    int sd_bus_message_new_signal(sd_bus *bus, sd_bus_message **m, const char *path,
                                  const char *interface, const char *member)
    int sd_bus_message_new_method_call(sd_bus *bus, sd_bus_message **m, const char *destination,
                                       const char *path, const char *interface, const char *member)
    int sd_bus_message_new_method_return(sd_bus_message *call, sd_bus_message **m)
    int sd_bus_message_new_method_error(sd_bus_message *call, sd_bus_message **m,
                                        const sd_bus_error *e)
    int sd_bus_message_new_method_errno(sd_bus_message *call, sd_bus_message **m, int error,
                                        const sd_bus_error *e)
    sd_bus_message *sd_bus_message_ref(sd_bus_message *m)
    sd_bus_message *sd_bus_message_unref(sd_bus_message *m)
    int sd_bus_message_seal(sd_bus_message *m, uint64_t cookie, uint64_t timeout_usec)
    int sd_bus_message_get_type(sd_bus_message *m, uint8_t *type)
    int sd_bus_message_get_cookie(sd_bus_message *m, uint64_t *cookie)
    int sd_bus_message_get_reply_cookie(sd_bus_message *m, uint64_t *cookie)
    int sd_bus_message_get_expect_reply(sd_bus_message *m)
    int sd_bus_message_get_auto_start(sd_bus_message *m)
    int sd_bus_message_get_allow_interactive_authorization(sd_bus_message *m)
    const char *sd_bus_message_get_signature(sd_bus_message *m, int complete)
    const char *sd_bus_message_get_path(sd_bus_message *m)
    const char *sd_bus_message_get_interface(sd_bus_message *m)
    const char *sd_bus_message_get_member(sd_bus_message *m)
    const char *sd_bus_message_get_destination(sd_bus_message *m)
    const char *sd_bus_message_get_sender(sd_bus_message *m)
    const sd_bus_error *sd_bus_message_get_error(sd_bus_message *m)
    int sd_bus_message_get_errno(sd_bus_message *m)
    int sd_bus_message_get_monotonic_usec(sd_bus_message *m, uint64_t *usec)
    int sd_bus_message_get_realtime_usec(sd_bus_message *m, uint64_t *usec)
    sd_bus *sd_bus_message_get_bus(sd_bus_message *m)
    sd_bus_creds *sd_bus_message_get_creds(sd_bus_message *m)
    int sd_bus_message_is_signal(sd_bus_message *m, const char *interface, const char *member)
    int sd_bus_message_is_method_call(sd_bus_message *m, const char *interface, const char *member)
    int sd_bus_message_is_method_error(sd_bus_message *m, const char *name)
    int sd_bus_message_is_empty(sd_bus_message *m)
    int sd_bus_message_has_signature(sd_bus_message *m, const char *signature)
    int sd_bus_message_set_expect_reply(sd_bus_message *m, int b)
    int sd_bus_message_set_auto_start(sd_bus_message *m, int b)
    int sd_bus_message_set_allow_interactive_authorization(sd_bus_message *m, int b)
    int sd_bus_message_set_destination(sd_bus_message *m, const char *destination)
    int sd_bus_message_set_sender(sd_bus_message *m, const char *sender)

    int sd_bus_message_append_basic(sd_bus_message *m, char type, const void *p)
    int sd_bus_message_append_array(sd_bus_message *m, char type, const void *ptr, size_t size)
    int sd_bus_message_append_array_space(sd_bus_message *m, char type, size_t size, void **ptr)
    int sd_bus_message_append_string_space(sd_bus_message *m, size_t size, char **s)
    int sd_bus_message_append_strv(sd_bus_message *m, char **l)
    int sd_bus_message_open_container(sd_bus_message *m, char type, const char *contents)
    int sd_bus_message_close_container(sd_bus_message *m)
    int sd_bus_message_copy(sd_bus_message *m, sd_bus_message *source, int all)

    int sd_bus_message_read_basic(sd_bus_message *m, char type, void *p)
    int sd_bus_message_read_array(sd_bus_message *m, char type, const void **ptr, size_t *size)
    int sd_bus_message_read_strv(sd_bus_message *m, char ***l)
    int sd_bus_message_skip(sd_bus_message *m, const char *types)
    int sd_bus_message_enter_container(sd_bus_message *m, char type, const char *contents)
    int sd_bus_message_exit_container(sd_bus_message *m)
    int sd_bus_message_peek_type(sd_bus_message *m, char *type, const char **contents)
    int sd_bus_message_verify_type(sd_bus_message *m, char type, const char *contents)
    int sd_bus_message_at_end(sd_bus_message *m, int complete)
    int sd_bus_message_rewind(sd_bus_message *m, int complete)
    int sd_bus_message_sensitive(sd_bus_message *m)

    int sd_bus_message_send(sd_bus_message *m)

    # names
    int sd_bus_request_name(sd_bus *bus, const char *name, uint64_t flags)
    int sd_bus_release_name(sd_bus *bus, const char *name)
    int sd_bus_list_names(sd_bus *bus, char ***acquired, char ***activatable)

    # replies
    int sd_bus_reply_method_error(sd_bus_message *call, const sd_bus_error *e)
    int sd_bus_reply_method_errno(sd_bus_message *call, int error, const sd_bus_error *e)

    # emitting
    int sd_bus_emit_properties_changed_strv(sd_bus *bus, const char *path, const char *interface,
                                            char **names)
    int sd_bus_emit_object_added(sd_bus *bus, const char *path)
    int sd_bus_emit_object_removed(sd_bus *bus, const char *path)
    int sd_bus_emit_interfaces_added_strv(sd_bus *bus, const char *path, char **interfaces)
    int sd_bus_emit_interfaces_removed_strv(sd_bus *bus, const char *path, char **interfaces)

    # credentials
    int sd_bus_query_sender_privilege(sd_bus_message *m, int capability)
    sd_bus_creds *sd_bus_creds_unref(sd_bus_creds *c)
    int sd_bus_creds_get_pid(sd_bus_creds *c, pid_t *pid)
    int sd_bus_creds_get_uid(sd_bus_creds *c, uid_t *uid)
    int sd_bus_creds_get_euid(sd_bus_creds *c, uid_t *euid)
    int sd_bus_creds_get_gid(sd_bus_creds *c, gid_t *gid)
    int sd_bus_creds_get_unique_name(sd_bus_creds *c, const char **name)

    # errors
    void sd_bus_error_free(sd_bus_error *e)
    int sd_bus_error_set(sd_bus_error *e, const char *name, const char *message)
    int sd_bus_error_set_const(sd_bus_error *e, const char *name, const char *message)
    int sd_bus_error_set_errno(sd_bus_error *e, int error)
    int sd_bus_error_get_errno(const sd_bus_error *e)
    int sd_bus_error_copy(sd_bus_error *dest, const sd_bus_error *e)
    int sd_bus_error_move(sd_bus_error *dest, sd_bus_error *e)
    int sd_bus_error_is_set(const sd_bus_error *e)
    int sd_bus_error_has_name(const sd_bus_error *e, const char *name)

    # object paths
    int sd_bus_path_encode(const char *prefix, const char *external_id, char **ret_path)
    int sd_bus_path_decode(const char *path, const char *prefix, char **ret_external_id)
