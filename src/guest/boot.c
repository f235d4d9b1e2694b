/* boot.c: the guest's early boot, as pid 1 from warden's initramfs.
 *
 * Sections: failure; the kernel command line (warden.*); modules; waiting for devices;
 * the root (read-only image + overlay on tmpfs), volumes, switching root; loopback and
 * the port.
 *
 * What the host decides arrives on the kernel command line, which the host wrote:
 *   warden.tmp=BYTES        size of the tmpfs under the writable overlay
 *   warden.vol=SERIAL:ro|rw:PATH  the disk with that serial, mounted at PATH
 *   warden.ro               / is read-only but for /tmp, /var/tmp and /home
 */
#define _GNU_SOURCE
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_VOLS 16

noreturn void agent_fatal(const char *what, int errnum)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "warden-guest: %s%s%s\n", what, errnum ? ": " : "",
	                 errnum ? strerror(errnum) : "");
	int fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0 && n > 0)
		(void)!write(fd, buf, (size_t)n);
	sync();
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* ---- the command line -------------------------------------------------------------- */

/* A small file into buf (NUL-terminated, at most len - 1 bytes); fatal when unreadable. */
static void read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;
	if (n < 0) {
		char what[160];
		snprintf(what, sizeof(what), "reading %s", path);
		agent_fatal(what, errno);
	}
	close(fd);
	buf[n] = '\0';
}

struct vol {
	char dev[16];
	char path[256];
	int rw;
};

int agent_root_rw = -1;

struct boot_cfg {
	int probe; /* warden.probe: only say that the guest got this far (assets.c) */
	int ro;    /* warden.ro */
	char tmp_opts[64];
	struct vol vols[MAX_VOLS];
	int n_vols;
};

static void parse_vol(struct boot_cfg *c, const char *v)
{
	const char *a = strchr(v, ':'), *b = a ? strchr(a + 1, ':') : NULL;
	if (!a || !b || a - v >= 16 || strlen(b + 1) >= 256 || b[1] != '/' || c->n_vols == MAX_VOLS)
		agent_fatal("bad warden.vol on the command line", 0);
	struct vol *vol = &c->vols[c->n_vols++];
	memcpy(vol->dev, v, (size_t)(a - v));
	vol->rw = strncmp(a + 1, "rw:", 3) == 0;
	snprintf(vol->path, sizeof(vol->path), "%s", b + 1);
}

static void parse_cmdline(struct boot_cfg *c)
{
	char buf[4096];
	snprintf(c->tmp_opts, sizeof(c->tmp_opts), "mode=0755");
	read_text("/proc/cmdline", buf, sizeof(buf));
	for (char *save, *t = strtok_r(buf, " \n", &save); t; t = strtok_r(NULL, " \n", &save)) {
		if (strncmp(t, "warden.tmp=", 11) == 0)
			snprintf(c->tmp_opts, sizeof(c->tmp_opts), "mode=0755,size=%s", t + 11);
		else if (strncmp(t, "warden.vol=", 11) == 0)
			parse_vol(c, t + 11);
		else if (strcmp(t, "warden.probe") == 0)
			c->probe = 1;
		else if (strcmp(t, "warden.ro") == 0)
			c->ro = 1;
	}
}

/* ---- modules ----------------------------------------------------------------------- */

/* The modules the setup script put in the initramfs, in dependency order. */
static void load_modules(void)
{
	char list[1024], path[128];
	read_text("/lib/modules/order", list, sizeof(list));
	for (char *save, *m = strtok_r(list, "\n", &save); m; m = strtok_r(NULL, "\n", &save)) {
		snprintf(path, sizeof(path), "/lib/modules/%s.ko", m);
		int mfd = open(path, O_RDONLY | O_CLOEXEC);
		if (mfd < 0)
			agent_fatal(path, errno);
		if (syscall(SYS_finit_module, mfd, "", 0) < 0 && errno != EEXIST)
			agent_fatal(path, errno);
		close(mfd);
	}
}

/* Devices appear once their driver probed them; the probes run asynchronously. */
static void wait_for(const char *path)
{
	for (int i = 0; i < 2000; i++) {
		if (access(path, F_OK) == 0)
			return;
		sleep_ms(i < 100 ? 1 : 10);
	}
	agent_fatal(path, ENOENT);
}

/* The device whose sysfs attribute CLASS/NAME/ATTR reads `want`, as /dev/NAME in dev,
 * waiting for it to appear (drivers probe asynchronously). Disks are found by the serial
 * the host gave them (virtio-mmio slots do not keep QEMU's order), the port by its name
 * (/dev/vportNpM, N the virtio device's index). */
static void find_dev(const char *class, const char *attr, const char *want, char *dev, size_t len)
{
	char path[300], buf[64];
	for (int i = 0; i < 2000; i++) {
		DIR *d = opendir(class);
		struct dirent *e;
		while (d && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s/%s", class, e->d_name, attr);
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
			if (fd >= 0)
				close(fd);
			if (n <= 0)
				continue;
			buf[n] = '\0';
			buf[strcspn(buf, "\n")] = '\0';
			if (strcmp(buf, want) == 0) {
				snprintf(dev, len, "/dev/%s", e->d_name);
				closedir(d);
				wait_for(dev);
				return;
			}
		}
		if (d)
			closedir(d);
		sleep_ms(i < 100 ? 1 : 10);
	}
	snprintf(path, sizeof(path), "no device in %s with %s %s", class, attr, want);
	agent_fatal(path, 0);
}

/* ---- the root ---------------------------------------------------------------------- */

static void do_mount(const char *src, const char *dst, const char *type, unsigned long flags,
                     const char *data)
{
	if (mount(src, dst, type, flags, data) < 0) {
		char what[320];
		snprintf(what, sizeof(what), "mounting %s on %s", type ? type : src, dst);
		agent_fatal(what, errno);
	}
}

static void mkdir_p(const char *path, mode_t mode)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(buf, mode) < 0 && errno != EEXIST)
				agent_fatal(buf, errno);
			*p = c;
			if (!c)
				break;
		}
	}
}

/* The host's system directories are read-only in a sandbox of the namespace backend,
 * and so they are here (warden.ro, for an image of them): / becomes a read-only mount
 * but for its writable places, bound onto themselves first. The agent keeps a writable
 * clone of the root's mount, detached and on no path, for what it makes later: the
 * plan's files, a missing home or working directory (serve.c). This is the policy's
 * read-only, not a boundary: the guest's root could remount /, and the boundary is the
 * VM. */
static void seal_root(void)
{
	static const char *const rw[] = {"/tmp", "/var/tmp", "/home"};
	mkdir_p("/home", 0755);
	for (size_t i = 0; i < sizeof(rw) / sizeof(rw[0]); i++)
		do_mount(rw[i], rw[i], NULL, MS_BIND, NULL);
	agent_root_rw = open_tree(AT_FDCWD, "/", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (agent_root_rw < 0)
		agent_fatal("cloning the root's mount", errno);
	do_mount("/", "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL);
}

/* The image is read-only and shared by every sandbox made from it; writes go to an
 * overlay whose upper layer is guest memory (tmpfs), gone when the guest is. */
static void setup_root(const struct boot_cfg *c)
{
	char path[300];
	mkdir_p("/lower", 0755);
	mkdir_p("/upper", 0755);
	mkdir_p("/newroot", 0755);
	char dev[300];
	find_dev("/sys/block", "serial", "root", dev, sizeof(dev));
	do_mount(dev, "/lower", "ext4", MS_RDONLY | MS_NODEV, "noload");
	do_mount("tmpfs", "/upper", "tmpfs", MS_NODEV | MS_NOSUID, c->tmp_opts);
	mkdir_p("/upper/data", 0755);
	mkdir_p("/upper/work", 0755);
	do_mount("overlay", "/newroot", "overlay", 0,
	         "lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work");
	mkdir_p("/newroot/proc", 0555);
	mkdir_p("/newroot/sys", 0555);
	mkdir_p("/newroot/dev", 0755);
	mkdir_p("/newroot/tmp", 01777);
	chmod("/newroot/tmp", 01777);
	mkdir_p("/newroot/var/tmp", 01777);
	chmod("/newroot/var/tmp", 01777);
	do_mount("proc", "/newroot/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	do_mount("sysfs", "/newroot/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
	         NULL);
	do_mount("devtmpfs", "/newroot/dev", "devtmpfs", MS_NOSUID, NULL);
	/* What udev would make: the links programs open as their own stdio. */
	static const char *const links[][2] = {{"/proc/self/fd", "/newroot/dev/fd"},
	                                       {"/proc/self/fd/0", "/newroot/dev/stdin"},
	                                       {"/proc/self/fd/1", "/newroot/dev/stdout"},
	                                       {"/proc/self/fd/2", "/newroot/dev/stderr"}};
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (symlink(links[i][0], links[i][1]) < 0 && errno != EEXIST)
			agent_fatal(links[i][1], errno);
	mkdir_p("/newroot/dev/pts", 0755);
	do_mount("devpts", "/newroot/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
	         "newinstance,ptmxmode=0666,mode=0620");
	/* /dev/shm is a directory of the overlay's tmpfs, so that tmp_size bounds it
	 * together with everything else the guest writes, as with namespaces. */
	mkdir_p("/upper/shm", 01777);
	chmod("/upper/shm", 01777);
	mkdir_p("/newroot/dev/shm", 01777);
	do_mount("/upper/shm", "/newroot/dev/shm", NULL, MS_BIND, NULL);
	do_mount("/upper/shm", "/newroot/dev/shm", NULL,
	         MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, NULL);
	for (int i = 0; i < c->n_vols; i++) {
		const struct vol *v = &c->vols[i];
		snprintf(path, sizeof(path), "/newroot%s", v->path);
		find_dev("/sys/block", "serial", v->dev, dev, sizeof(dev));
		mkdir_p(path, 0755);
		do_mount(dev, path, "ext4", MS_NODEV | MS_NOSUID | (v->rw ? 0 : MS_RDONLY),
		         v->rw ? NULL : "noload");
	}
	/* initramfs is the root mount and cannot be pivoted away: move the new root over
	 * it and chroot (what switch_root does). The image and tmpfs mounts stay below,
	 * out of reach of every path. */
	if (chdir("/newroot") < 0)
		agent_fatal("chdir /newroot", errno);
	do_mount(".", "/", NULL, MS_MOVE, NULL);
	if (chroot(".") < 0 || chdir("/") < 0)
		agent_fatal("chroot", errno);
	if (c->ro)
		seal_root();
}

/* ---- the port ---------------------------------------------------------------------- */

/* The guest has no network device, but loopback is up, as in a sandbox of the
 * namespace backend: servers and clients on 127.0.0.1 inside work. */
static void loopback_up(void)
{
	struct ifreq ifr = {.ifr_name = "lo"};
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		agent_fatal("loopback", errno);
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		agent_fatal("bringing loopback up", errno);
	close(s);
}

static int open_port(void)
{
	char dev[300];
	find_dev("/sys/class/virtio-ports", "name", AGENT_PORT_NAME, dev, sizeof(dev));
	int port = open(dev, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (port < 0)
		agent_fatal(dev, errno);
	return port;
}

int agent_boot(void)
{
	struct boot_cfg cfg = {0};
	mkdir_p("/dev", 0755);
	mkdir_p("/proc", 0555);
	mkdir_p("/sys", 0555);
	do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, NULL);
	do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	do_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	parse_cmdline(&cfg);
	if (cfg.probe) {
		int fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
		(void)!write(fd, "warden-guest: probe ok\n", 23);
		reboot(RB_POWER_OFF);
	}
	load_modules();
	setup_root(&cfg);
	(void)!sethostname("warden", 6);
	loopback_up();
	return open_port();
}
