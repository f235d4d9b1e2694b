"""Devices, /proc and /sys: no host device exists inside and none can be made, the kernel's
tunables cannot be written, kernel addresses and key names are masked, and neither /sys
nor the cgroup file systems are there at all.
"""
import os

import pytest

from conftest import assert_errno, assert_ok, assert_refused, output

GUEST_DEV = ("/dev is the guest kernel's devtmpfs: its nodes are the guest's own virtual "
             "devices, and its root may make more (docs/vm.md)")
GUEST_PROC = "/proc and /sys are the guest kernel's own: nothing in them is the host's"


@pytest.mark.not_in_vm(GUEST_DEV)
def test_mknod_char_device(esc, scratch):
    """/dev/mem is character device 1:1. On the host root makes one (on a private tmpfs);
    the test user is refused by the kernel's CAP_MKNOD check, which comes after path
    lookup, so a node in a missing directory shows ENOENT on the host and the sandbox's
    EPERM inside (seccomp refuses before any lookup)."""
    if esc.mode == "root":
        node = os.path.join(scratch, "mem")
        assert_ok(esc.outside("--isolate", "--tmpfs", scratch, "mknod", node, "char", "1", "1"))
        assert not os.path.exists(node)
        inside_path = "/tmp/mem"
    else:
        inside_path = "/nonexistent/mem"
        assert_errno(esc.outside("mknod", inside_path, "char", "1", "1"), "ENOENT")
    assert_errno(esc.inside("mknod", inside_path, "char", "1", "1"), "EPERM", what="mknod")
    r = esc.inside("mknod", inside_path, "char", "1", "1", opts=["--user", "0"])
    assert_errno(r, "EPERM", what="mknod")


@pytest.mark.not_in_vm(GUEST_DEV)
def test_mknod_block_device(esc_root, scratch):
    """The host's disk as a block node (major 254 or 8; any numbers do)."""
    node = os.path.join(scratch, "disk")
    r = esc_root.outside("--isolate", "--tmpfs", scratch, "mknod", node, "block", "254", "0")
    assert_ok(r)
    r = esc_root.inside("mknod", "/tmp/disk", "block", "254", "0", opts=["--user", "0"])
    assert_errno(r, "EPERM", what="mknod")


def host_disk():
    for dev in ("/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/xvda", "/dev/mmcblk0"):
        if os.path.exists(dev):
            return dev
    return None


HOST_DEVICES = [host_disk(), "/dev/kmsg", "/dev/mem", "/dev/port", "/dev/userfaultfd",
                "/dev/vsock", "/dev/loop-control", "/dev/console", "/dev/tty0", "/dev/vcs",
                "/dev/fuse", "/dev/kvm"]


@pytest.mark.not_in_vm(GUEST_DEV)
@pytest.mark.parametrize("dev", HOST_DEVICES)
def test_host_device_absent(esc, dev):
    """The node exists on the host (any user can stat it); inside it does not exist, so
    neither stat nor open reaches it."""
    if dev is None or not os.path.exists(dev):
        pytest.skip(f"{dev or 'no disk node'} does not exist on this host (this kernel "
                    f"lacks the driver): nothing to hide")
    assert_ok(esc.outside("stat", dev))
    assert_errno(esc.inside("stat", dev), "ENOENT", what=dev)
    assert_errno(esc.inside("open", dev, "r", opts=["--user", "0"]), "ENOENT", what=dev)


@pytest.mark.not_in_vm("the guest's root reads its own kernel's log")
def test_read_kmsg(esc_root):
    """The kernel log as a device: host root opens it to read; inside it is absent."""
    assert_ok(esc_root.outside("open", "/dev/kmsg", "r"))
    r = esc_root.inside("open", "/dev/kmsg", "r", opts=["--user", "0"])
    assert_errno(r, "ENOENT", what="/dev/kmsg")


def test_write_proc_sys_net(esc):
    """A sysctl that an unprivileged user may write on the host, in network namespace of
    its own (--isolate); inside, /proc/sys is read-only and the sandbox user holds no
    capability over its network namespace."""
    path = "/proc/sys/net/ipv4/ping_group_range"
    assert_ok(esc.outside("--isolate", "open", path, "w"))
    for opts in esc.variants([], ["--user", "0"], ["--network", "host"]):
        assert_errno(esc.inside("open", path, "w", opts=opts), "EACCES", "EROFS", what=path)


@pytest.mark.parametrize("name", ["core_pattern", "hostname", "panic", "randomize_va_space"])
def test_write_proc_sys_kernel(esc_root, name):
    """kernel.core_pattern is the classic escape (a pipe handler runs as host root).
    Outside, host root opens it for writing (nothing is written); inside it cannot."""
    path = f"/proc/sys/kernel/{name}"
    assert_ok(esc_root.outside("open", path, "w"))
    for opts in esc_root.variants([], ["--user", "0"]):
        r = esc_root.inside("open", path, "w", opts=opts)
        assert_errno(r, "EACCES", "EROFS", what=path)


@pytest.mark.not_in_vm("the guest's root may use its own kernel's SysRq: a crash ends only "
                       "its sandbox (test_vm.py)")
def test_sysrq_trigger(esc_root):
    path = "/proc/sysrq-trigger"
    if not os.path.exists(path):
        pytest.skip("this kernel has no magic SysRq (CONFIG_MAGIC_SYSRQ off): no "
                    "/proc/sysrq-trigger on the host")
    assert_ok(esc_root.outside("open", path, "w"))
    r = esc_root.inside("open", path, "w", opts=["--user", "0"])
    assert_errno(r, "EACCES", "ENOENT", what=path)


@pytest.mark.not_in_vm(GUEST_PROC)
@pytest.mark.parametrize("name", ["kallsyms", "keys", "key-users"])
def test_masked_proc_entry(esc, name):
    """World-readable /proc entries that leak kernel addresses or other users' key names
    read non-empty on the host and are /dev/null (1:3) inside."""
    path = f"/proc/{name}"
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist on this kernel")
    outside = esc.outside("proc_keys") if name == "keys" else esc.outside("read_content", path)
    assert_ok(outside)
    r = esc.inside("stat", path)
    assert_ok(r)
    assert r.stdout.startswith("char rdev=1:3 "), "not masked with /dev/null\n" + output(r)
    r = esc.inside("proc_keys") if name == "keys" else esc.inside("read_content", path)
    assert_refused(r, "empty", what=path)


@pytest.mark.parametrize("name", ["timer_list", "vmallocinfo", "kpageflags", "kpagecount"])
def test_root_only_proc_entry(esc_root, name):
    """Entries only host root may read are not masked (a mount costs start time) because
    nothing in a sandbox is ever host root: even uid 0 inside is refused."""
    path = f"/proc/{name}"
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist on this kernel")
    assert_ok(esc_root.outside("read", path))
    for opts in esc_root.variants([], ["--user", "0"]):
        assert_errno(esc_root.inside("read", path, opts=opts), "EACCES", what=path)


@pytest.mark.not_in_vm(GUEST_PROC)
@pytest.mark.parametrize("path", ["/sys/kernel", "/sys/fs/cgroup", "/sys/class/net",
                                  "/sys/firmware"])
def test_sys_absent(esc, path):
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist on this host")
    assert_ok(esc.outside("stat", path))
    assert_errno(esc.inside("stat", path), "ENOENT", what=path)


def own_cgroup_procs():
    """cgroup.procs of this process's group in the pids (v1) or unified (v2) hierarchy."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for root in (f"/sys/fs/cgroup/{ctrls}" if ctrls == "pids" else None,
                         "/sys/fs/cgroup/unified" if ctrls == "" else None):
                if root and os.path.exists(f"{root}{path}/cgroup.procs"):
                    return f"{root}{path}/cgroup.procs".replace("//", "/")
    if os.path.exists("/sys/fs/cgroup/cgroup.procs"):
        return "/sys/fs/cgroup/cgroup.procs"
    return None


def test_cgroup_files(esc):
    """Moving a process between cgroups (or raising a limit) starts with opening a cgroup
    file for writing: host root can; inside there is no cgroup file system, and mounting
    one is refused (test_namespaces)."""
    procs = own_cgroup_procs()
    if procs is None:
        pytest.skip("no cgroup file system on this host")
    if esc.mode == "root":
        assert_ok(esc.outside("open", procs, "w"))
    else:
        assert_ok(esc.outside("stat", procs))
    for opts in ([], ["--user", "0"]):
        assert_errno(esc.inside("open", procs, "w", opts=opts), "ENOENT", what=procs)
