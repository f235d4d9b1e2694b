/* vm.h: the vm backend's internal interface (docs/vm.md), one section per file.
 *
 * assets.c  the guest kernel, warden's initramfs, the root file system image (cached by
 *           what it was built from), the accelerator probe
 * volumes.c volume images: copied in before the guest starts, copied out after
 * qemu.c    QEMU's command line, the QMP client (jansson)
 * backend.c struct warden_backend warden_vm_backend: QEMU inside a namespace sandbox,
 *           the relay between the guest agent and the caller's stdio
 * net.c     the guest's network (proxy mode, the model gateway) as streams over the
 *           agent's port (stream.c), served by the supervisor's netserve
 */
#ifndef WARDEN_VM_H
#define WARDEN_VM_H

#include "../error.h"
#include "../plan.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- assets.c ---------------------------------------------------------------------- */

enum vm_accel {
	VM_ACCEL_TCG,
	VM_ACCEL_KVM,
	VM_ACCEL_MAX,
};

struct vm_assets {
	char *kernel; /* vmlinux (PVH entry) */
	char *initrd; /* warden's agent + the guest's modules */
	char *rootfs; /* the read-only root image */
	char *kernel_version;
	enum vm_accel accel;
	const char *accel_note; /* why TCG, for the one-line warning; NULL with KVM */
};

/* Where setup put the guest kernel: $WARDEN_VM_DIR, else /var/cache/warden/vm. */
const char *vm_kernel_dir(void);
/* Where images and probes are cached (made if missing): $WARDEN_VM_CACHE, else the kernel
 * directory as root, ~/.cache/warden/vm otherwise. Caller frees. */
char *vm_cache_dir(struct warden_error **err);
/* Find or build everything a guest of this plan boots from. */
int vm_assets_get(const struct warden_plan *plan, struct vm_assets *ret, struct warden_error **err);
void vm_assets_clear(struct vm_assets *a);
/* Whether KVM can boot the guest here: probed once (a bounded boot under KVM), the
 * answer cached in the cache directory by kernel and host. */
enum vm_accel vm_accel_probe(const struct vm_assets *a, const char **ret_note);

/* The initramfs part warden builds itself (generated from src/guest/ at build time). */
extern const unsigned char warden_guest_cpio[];
extern const unsigned long warden_guest_cpio_len;

/* ---- volumes.c --------------------------------------------------------------------- */

struct vm_volume {
	char *host;  /* the host directory */
	char *path;  /* where the guest mounts it */
	char *image; /* its image in the state directory */
	bool rw;
	uid_t owner_uid; /* who owns the host directory: files copied out become theirs */
	gid_t owner_gid;
};

/* Make an ext4 image of each volume of the plan in dir (copy-in). */
int vm_volumes_prepare(const struct warden_plan *plan, const char *dir, struct vm_volume **ret,
                       size_t *ret_n, struct warden_error **err);
/* Copy what the guest left in each read-write volume back to its host directory
 * (copy-out), owned by the directory's owner. */
int vm_volumes_copy_out(const struct vm_volume *v, size_t n, struct warden_error **err);
void vm_volumes_free(struct vm_volume *v, size_t n);

/* ---- qemu.c ------------------------------------------------------------------------ */

/* Paths are as QEMU sees them in its sandbox (backend.c binds them there). */
struct vm_launch {
	const struct vm_assets *assets;
	const char *kernel, *initrd, *rootfs;
	const char *state_dir; /* agent.sock, qmp.sock, console.log, volume images */
	uint64_t memory;       /* guest RAM, bytes */
	uint64_t tmp_size;     /* the guest's writable layer */
	const struct vm_volume *volumes;
	size_t n_volumes;
	bool incoming;       /* start paused, waiting for a saved state (snapshot.c) */
	bool read_only_root; /* the host's system directories: read-only, as with namespaces */
};

/* QEMU's argv (NULL-terminated; free with strv_free()). */
char **vm_qemu_argv(const struct vm_launch *l);
/* The QMP handshake on a connected socket: greeting, qmp_capabilities. */
int vm_qmp_handshake(int fd, int timeout_ms, struct warden_error **err);
/* Run one QMP command (args: a json_t object or NULL, taken; send_fd: a descriptor to
 * pass with it (SCM_RIGHTS, for getfd) or -1) and wait for its answer, skipping events.
 * *ret (when ret is not NULL) gets the answer's "return" value (a json_t, caller
 * decrefs). */
int vm_qmp_call(int fd, const char *cmd, void *args, int send_fd, int timeout_ms, void **ret,
                struct warden_error **err);
/* Read one QMP message if one is ready; for an event, *ret_name and *ret_reason (caller
 * frees; reason may be NULL). Returns 1 for an event, 0 for nothing (or a non-event),
 * -1 at end of stream. */
int vm_qmp_read_event(int fd, char **ret_name, char **ret_reason);

#endif

/* ---- relay.c / backend.c ----------------------------------------------------------- */

#include "../sandbox.h"
#include "frame.h"

#include <poll.h>
#include <pthread.h>

#define VM_ROUTES   64
#define VM_NET_POLL (FRAME_NET_STREAMS + 1) /* the streams and DNS */

/* Where a guest command's stdio goes on the host. */
struct vm_route {
	bool used;
	uint32_t id;  /* the guest's id: 0 for the main command, N+1 for exec request N */
	int fd[3];    /* stdin (-1 once at end), stdout, stderr: owned copies */
	bool started; /* STARTED seen */
};

struct vm_state {
	struct vm_assets assets;
	char *state_dir;
	struct vm_volume *vols;
	size_t n_vols;
	struct warden_plan *qplan;  /* QEMU's namespace sandbox */
	struct warden_sandbox *qsb; /* ... and the sandbox itself */
	struct warden_sandbox *sb;  /* the vm sandbox this state belongs to */
	int agent, qmp;             /* connected sockets */
	int live_fd;                /* the state directory's "live" file, locked */
	int ev[2];                  /* events from the relay thread: struct warden_event */
	int wake;                   /* eventfd: frames queued, or stop */
	bool stop;
	bool service;
	bool killed;      /* vm_kill() was called: an end is expected */
	bool ended;       /* the relay sent its last event */
	bool frozen;      /* QEMU is frozen (vm_freeze()): no heartbeat is expected */
	int heartbeat_ms; /* a guest silent this long is wedged; 0: no heartbeat */
	bool heard;       /* bytes came from the agent since the last heartbeat tick */
	int missed;       /* ticks in a row without them */
	uint32_t pings;   /* PINGs sent */
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu; /* routes, out, stop */
	struct vm_route routes[VM_ROUTES];
	uint8_t *out; /* frames waiting for the agent's socket */
	size_t n_out;
	uint8_t in[2 * (FRAME_HEADER + FRAME_MAX)]; /* bytes from the agent not yet decoded */
	size_t n_in;
	struct vm_net *net;       /* proxy mode, the model gateway (net.c); NULL without */
	char shutdown_reason[64]; /* from QMP's SHUTDOWN event */
	char argv0[256];          /* the main command, for messages */
};

/* Queue a frame for the guest (any thread) and wake the relay. */
void vm_relay_send(struct vm_state *st, uint8_t type, uint32_t id, const void *payload,
                   uint32_t len);
/* The same with st->mu held, on the relay thread (which sends it before it polls again). */
void vm_relay_queue(struct vm_state *st, uint8_t type, uint32_t id, const void *payload,
                    uint32_t len);
/* Decode frames from the agent's socket until one is READY (at boot). Returns 0, -1 with
 * *err on a malformed frame, end of stream or timeout. */
int vm_relay_wait_ready(struct vm_state *st, int timeout_ms, struct warden_error **err);
/* Start and stop the relay thread. */
int vm_relay_start(struct vm_state *st, struct warden_error **err);
void vm_relay_stop(struct vm_state *st);
/* What the guest's console says last about why it stopped ("Kernel panic - ..."), in
 * buf; "" when nothing. */
void vm_console_tail(const struct vm_state *st, char *buf, size_t len);

/* ---- net.c ------------------------------------------------------------------------- */

/* Make the listeners the plan asks for (proxy mode: the proxies and DNS; the gateway) as
 * the supervisor's own sockets, in sb->net_fds for its netserve. Nothing without. */
int vm_net_prepare(struct vm_state *st, struct warden_error **err);
/* Tell the agent what to listen on (LISTEN), once it serves. */
void vm_net_offer(struct vm_state *st);
/* On the relay thread, with st->mu held: the network's frames from the guest (OPEN,
 * DATA_OUT, CREDIT_OUT, CLOSE_OUT; -1 with *ret_why when one breaks the protocol), the
 * descriptors to poll (into p, at most VM_NET_POLL; may_read: the queue to the guest has
 * room) and what to do when they are ready. */
int vm_net_frame(struct vm_state *st, const struct frame *f, const char **ret_why);
int vm_net_poll(struct vm_state *st, struct pollfd *p, bool may_read);
void vm_net_ready(struct vm_state *st, const struct pollfd *p, int n);
/* Close every stream and socket (the relay has stopped). NULL-safe. */
void vm_net_free(struct vm_state *st);

/* ---- snapshot.c -------------------------------------------------------------------- */

/* Where this sandbox's guest is (or would be) saved, or NULL where none is used:
 * volumes, WARDEN_VM_SNAPSHOT=0, or guest RAM over 512 MiB without
 * WARDEN_VM_SNAPSHOT=1. Caller frees. */
char *vm_snapshot_path(const struct vm_state *st);
/* Save the running, idle guest to path (it goes on running). */
int vm_snapshot_save(struct vm_state *st, const char *path, struct warden_error **err);
/* Load path into a QEMU started with incoming set, and let it run. */
int vm_snapshot_restore(struct vm_state *st, const char *path, struct warden_error **err);
