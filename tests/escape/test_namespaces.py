"""Mounts and namespaces: the file system layout is fixed by warden, and no new namespace
(above all no new user namespace, the door to a full capability set) can be made or
joined from inside.

On the host the mount attempts run under the probe's --isolate: private mount, network,
UTS, IPC and cgroup namespaces, plus a user namespace for the unprivileged test user.
That is exactly how an unprivileged process gains the right to mount, so it is also
tried inside, where its first step (unshare) is refused.
"""
import pytest

from conftest import assert_errno, assert_ok

GUEST_NS = ("in a VM mounts and new namespaces are made in the guest kernel, the boundary "
            "there, which the namespace backend's filter does not guard (docs/vm.md)")


def assert_isolation_refused(esc, *args):
    """Inside, the route through a new user namespace is closed at its first step."""
    r = esc.inside("--isolate", *args)
    assert_errno(r, "EPERM", what="isolate: unshare")


@pytest.mark.not_in_vm(GUEST_NS)
@pytest.mark.parametrize("fstype", ["tmpfs", "sysfs", "cgroup2"])
def test_mount_new_filesystem(esc, scratch, fstype):
    """A fresh tmpfs (to shadow paths), sysfs (host devices and kernel knobs), cgroup2
    (cgroup files: limits and the release-agent family of escapes)."""
    assert_ok(esc.outside("--isolate", "mount", fstype, scratch))
    assert_errno(esc.inside("mount", fstype, "/tmp"), "EPERM", what="mount")
    assert_isolation_refused(esc, "mount", fstype, "/tmp")


@pytest.mark.not_in_vm(GUEST_NS)
def test_bind_mount(esc, scratch):
    assert_ok(esc.outside("--isolate", "bind", "/etc", scratch))
    assert_errno(esc.inside("bind", "/", "/tmp"), "EPERM", what="bind mount")
    assert_isolation_refused(esc, "bind", "/", "/tmp")


@pytest.mark.not_in_vm(GUEST_NS)
@pytest.mark.parametrize("path", ["/proc/kallsyms"])
def test_unmount_proc_mask(esc, path):
    """Unmounting the /dev/null that masks a /proc entry would expose it again."""
    r = esc.outside("--isolate", "unmask", path, "mask-first")
    assert_ok(r)
    assert_errno(esc.inside("unmask", path), "EPERM", what="umount2")


@pytest.mark.not_in_vm(GUEST_NS)
def test_new_mount_api_fsopen(esc):
    assert_ok(esc.outside("--isolate", "fsopen", "tmpfs"))
    assert_errno(esc.inside("fsopen", "tmpfs"), "EPERM", what="fsopen")


@pytest.mark.not_in_vm(GUEST_NS)
def test_new_mount_api_open_tree(esc):
    assert_ok(esc.outside("--isolate", "open_tree", "/etc"))
    assert_errno(esc.inside("open_tree", "/etc"), "EPERM", what="open_tree")


@pytest.mark.not_in_vm(GUEST_NS)
def test_new_mount_api_open_tree_attr(esc):
    """open_tree_attr (Linux 6.15) is newer than the seccomp library's tables: it is
    refused by number."""
    r = esc.outside("--isolate", "open_tree_attr", "/etc")
    if r.returncode != 0 and "[ENOSYS]" in r.stderr:
        pytest.skip("this kernel has no open_tree_attr (before 6.15)")
    assert_ok(r)
    assert_errno(esc.inside("open_tree_attr", "/etc"), "EPERM", what="open_tree_attr")


@pytest.mark.not_in_vm(GUEST_NS)
def test_pivot_root(esc, scratch):
    """/tmp is a mount point inside, so pivot_root(".", ".") there is otherwise valid."""
    assert_ok(esc.outside("--isolate", "--tmpfs", scratch, "pivot_root", scratch))
    assert_errno(esc.inside("pivot_root", "/tmp"), "EPERM", what="pivot_root")


@pytest.mark.not_in_vm(GUEST_NS)
def test_chroot(esc, scratch):
    assert_ok(esc.outside("--isolate", "chroot", scratch))
    assert_errno(esc.inside("chroot", "/tmp"), "EPERM", what="chroot")
    assert_isolation_refused(esc, "chroot", "/tmp")


NAMESPACES = ["user", "mnt", "pid", "net", "ipc", "uts", "cgroup", "time"]


@pytest.mark.not_in_vm(GUEST_NS)
@pytest.mark.parametrize("ns", NAMESPACES)
def test_unshare(esc, ns):
    """Alone (as root may on the host) and together with a user namespace (as anyone
    may on the host)."""
    with_user = "user" if ns == "user" else f"user,{ns}"
    if esc.mode == "root":
        assert_ok(esc.outside("unshare", ns))
    assert_ok(esc.outside("unshare", with_user))
    assert_errno(esc.inside("unshare", ns), "EPERM", what="unshare")
    assert_errno(esc.inside("unshare", with_user), "EPERM", what="unshare")


@pytest.mark.not_in_vm(GUEST_NS)
@pytest.mark.parametrize("flags", ["user", "user,mnt,pid,net,ipc,uts,cgroup"])
def test_clone_new_namespaces(esc, flags):
    """The raw clone system call, as a program would make it without the C library."""
    assert_ok(esc.outside("clone", flags))
    assert_errno(esc.inside("clone", flags), "EPERM", what="clone")


@pytest.mark.not_in_vm(GUEST_NS)
@pytest.mark.parametrize("flags", ["user", "none"])
def test_clone3(esc, flags):
    """clone3 passes its flags in memory, out of seccomp's sight: it is refused as a whole
    with ENOSYS (so the C library falls back to clone), with or without namespace flags."""
    assert_ok(esc.outside("clone3", flags))
    assert_errno(esc.inside("clone3", flags), "ENOSYS", what="clone3")


@pytest.mark.not_in_vm(GUEST_NS)
def test_setns(esc):
    """Joining a namespace: on the host a process may join one it owns (its own UTS
    namespace, after --isolate); inside, setns itself is refused."""
    assert_ok(esc.outside("--isolate", "setns", "/proc/self/ns/uts"))
    assert_errno(esc.inside("setns", "/proc/self/ns/uts"), "EPERM", what="setns")
    # a bad descriptor: the kernel says EBADF before any permission check
    r = esc.outside("setns", "-")
    assert_errno(r, "EBADF")
    assert_errno(esc.inside("setns", "-"), "EPERM", what="setns")


@pytest.mark.parametrize("ns", ["mnt", "net", "pid", "user", "uts", "ipc", "cgroup"])
def test_init_namespace_handles(esc, host_sleep, ns):
    """The namespace files of another process of the same user open on the host (the
    first step of setns into it); those of the sandbox's init do not open inside."""
    assert_ok(esc.outside("open", f"/proc/{host_sleep.pid}/ns/{ns}", "r"))
    assert_errno(esc.inside("setns", f"/proc/1/ns/{ns}"), "EACCES", what=f"/proc/1/ns/{ns}")


@pytest.mark.not_in_vm(GUEST_NS)
def test_write_uid_map(esc):
    """A process may write an id map once, for a user namespace it has just made. Inside,
    the sandbox's map is already written and cannot be widened (to host root, or to any
    other id), and no new user namespace can be made to write one."""
    assert_ok(esc.outside("uid_map", f"0 {esc.runner.uid} 1", "fresh"))
    for mapping in ("0 0 1", "0 0 4294967295", "1000 1000 1"):
        r = esc.inside("uid_map", mapping)
        assert_errno(r, "EPERM", what="writing /proc/self/uid_map")
    r = esc.inside("uid_map", "0 1000 1", "fresh")
    assert_errno(r, "EPERM", what="unshare(CLONE_NEWUSER)")
    r = esc.inside("uid_map", "0 0 1", opts=["--user", "0"])
    assert_errno(r, "EPERM", what="writing /proc/self/uid_map")
