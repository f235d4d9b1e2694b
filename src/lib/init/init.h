/* init.h: the entry point of a namespace sandbox's pid 1 (init.c). */
#ifndef WARDEN_INIT_H
#define WARDEN_INIT_H

#include "../plan.h"
#include "../sandbox.h"

#include "../sync.h"

/* Runs in the freshly cloned child: waits for the supervisor's GO (shared flag, then sock),
 * applies every layer in order, starts proc, and stays as pid 1 until proc exits, then
 * exits with its status (sync.h). Never returns; setup failures are reported on sock and
 * end in _exit(125), exec failures in _exit(127). */
_Noreturn void ns_init_main(const struct warden_plan *plan, const struct warden_process *proc,
                            int sock, struct sync_shared *shared);

#endif
