/* agent.h: warden's guest agent, the /init of a vm sandbox (docs/vm.md).
 *
 * boot.c brings the guest up (modules, mounts, the overlay root, the agent's port);
 * serve.c runs commands on the host's requests over that port (docs/guest-protocol.md).
 * A static binary linked with glibc and src/lib/vm/frame.c only.
 */
#ifndef WARDEN_GUEST_AGENT_H
#define WARDEN_GUEST_AGENT_H

#include <stdnoreturn.h>

/* The virtio-serial port's name (QEMU's virtserialport name=). */
#define AGENT_PORT_NAME "org.warden.agent"

/* Say why on the console (the host keeps its tail for its error message), then power
 * off: pid 1 must never exit. */
noreturn void agent_fatal(const char *what, int errnum);

/* The guest's root file system, writable where / is made read-only (warden.ro: a
 * detached clone of its mount), for what the agent writes there; -1 where / is
 * writable. */
extern int agent_root_rw;

/* Bring the guest up and switch into its root; returns the port, open read-write. */
int agent_boot(void);

/* Serve requests on the port until told to power off; never returns. */
noreturn void agent_serve(int port);

#endif
