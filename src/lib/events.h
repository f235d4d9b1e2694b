/* events.h: the event model (docs/events.md): one JSON object per event, with "v" (the
 * format version), "ts" (RFC 3339, UTC, microseconds), "sandbox" (its id), "kind", and the
 * kind's own fields. */
#ifndef WARDEN_EVENTS_H
#define WARDEN_EVENTS_H

#include "telemetry/telemetry.h"

#include <jansson.h>
#include <stdint.h>

#define WARDEN_EVENTS_VERSION 1

/* A new event stamped now (ts_ns 0) or at ts_ns (CLOCK_REALTIME nanoseconds). */
json_t *warden_event_new(const char *sandbox, const char *kind, uint64_t ts_ns);
/* The event for a telemetry record. */
json_t *warden_event_from_tel(const char *sandbox, const struct warden_tel_event *e);
/* "2026-11-27T13:28:14.123456Z" */
void warden_format_ts(char *buf, size_t len, uint64_t realtime_ns);
/* A system call's name on this architecture ("openat"), or "syscall_N". Caller frees. */
char *warden_syscall_name(int nr);

#endif
