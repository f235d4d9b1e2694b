/* agent.h: warden's guest agent, the /init of a vm sandbox (docs/vm.md).
 *
 * boot.c brings the guest up (modules, mounts, the overlay root, the agent's port);
 * serve.c runs commands on the host's requests over that port (docs/guest-protocol.md);
 * net.c serves the guest's loopback listeners over it (proxy mode, the model gateway).
 * A static binary linked with glibc and src/lib/vm/frame.c and stream.c only.
 */
#ifndef WARDEN_GUEST_AGENT_H
#define WARDEN_GUEST_AGENT_H

#include "../lib/vm/frame.h"

#include <poll.h>
#include <stdint.h>
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
/* Send a frame to the host (waiting while the port is full); an ERROR frame. */
void agent_send(uint8_t type, uint32_t id, const void *payload, uint32_t len);
void agent_send_error(uint32_t id, const char *text);

/* net.c: LISTEN's payload; the network's frames from the host (DATA_IN, CREDIT_IN,
 * CLOSE_IN); the descriptors to poll (at most NET_POLL_MAX, into p; returns how many)
 * and what to do when they are ready. */
#define NET_POLL_MAX (FRAME_NET_LISTENERS + FRAME_NET_STREAMS)
void net_listen(const uint8_t *p, uint32_t len);
void net_frame(const struct frame *f);
int net_poll(struct pollfd *p);
void net_ready(const struct pollfd *p, int n);

#endif
