"""Identity and privilege: no capability in any set, no privilege from setuid binaries
(no_new_privs, nosuid mounts), Landlock in force where the mounts alone would allow, and
no way around the system-call filter through other system-call ABIs.
"""
import os
import shutil
import tempfile

import pytest

from conftest import SIGSYS_EXIT, Escape, assert_errno, assert_ok, assert_refused, output

NO_FILTER = ("no seccomp filter or Landlock in a guest: the guest kernel is the boundary "
             "there, and these layers are the namespace backend's (docs/vm.md)")


def test_capabilities_empty(esc):
    """On the host root holds every capability and an unprivileged user still has a full
    bounding set (what a setuid or file-capability exec could grant). Inside every set
    is empty, for uid 0 inside as well."""
    r = esc.outside("caps")
    assert_ok(r)
    for opts in esc.variants([], ["--user", "0"]):
        r = esc.inside("caps", opts=opts)
        assert_refused(r, "all sets are empty", what="capabilities")
        assert "CapBnd:\t0000000000000000" in r.stdout, output(r)


@pytest.fixture
def outside_user(rootless_runner, warden, probe, bindir):
    """The setuid attempts run on the host as the unprivileged user in both modes: for
    root, euid 0 would prove nothing."""
    return Escape(rootless_runner, warden, probe, bindir)


@pytest.mark.parametrize("program", ["/usr/bin/passwd", "/usr/bin/su", "/usr/bin/mount",
                                     "/usr/bin/newgrp"])
def test_setuid_binary(esc, outside_user, program):
    """An existing setuid-root program: run by the test user on the host it has euid 0
    (read from /proc while it is a zombie); inside it keeps the agent's euid."""
    st = os.stat(program) if os.path.exists(program) else None
    if st is None or not (st.st_mode & 0o4000 and st.st_uid == 0):
        pytest.skip(f"{program} is not a setuid-root program on this host")
    r = outside_user.outside("exec_euid", program)
    assert_ok(r)
    assert r.stdout.endswith("euid 0\n"), output(r)
    r = esc.inside("exec_euid", program)
    assert_refused(r, "ran without euid 0", what=program)
    assert "euid 1000" in r.stdout, output(r)


@pytest.fixture
def setuid_probe_dir(probe):
    """A root-owned directory holding a setuid-root copy of the probe."""
    d = tempfile.mkdtemp(prefix="warden-suid-")
    os.chmod(d, 0o755)
    copy = os.path.join(d, "probe")
    shutil.copy2(probe, copy)
    os.chown(copy, 0, 0)
    os.chmod(copy, 0o4755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_setuid_probe(esc, outside_user, setuid_probe_dir):
    """The probe itself, setuid root, bound in as a volume."""
    copy = os.path.join(setuid_probe_dir, "probe")
    r = outside_user.run([copy, "euid"])
    assert_ok(r)
    r = esc.run([esc.warden, "run", "-q", "-v", f"{setuid_probe_dir}:/suid:ro", "--",
                 "/suid/probe", "euid"])
    assert_refused(r, "not root", what="euid")
    assert r.stdout == "euid 1000\n", output(r)


@pytest.mark.not_in_vm(NO_FILTER)
def test_landlock_device_ioctl(esc, landlock_abi):
    """The mounts make /dev/urandom a working device node; Landlock (ABI 5+) still refuses
    device-specific ioctls on it (here RNDGETENTCNT, harmless on the host)."""
    if landlock_abi < 5:
        pytest.skip(f"Landlock ABI {landlock_abi} has no device ioctl rights (needs 5)")
    assert_ok(esc.outside("rndgetentcnt", "/dev/urandom"))
    r = esc.inside("landlock_abi")
    assert_ok(r)
    assert int(r.stdout) == landlock_abi, output(r)
    for opts in ([], ["--user", "0"]):
        r = esc.inside("rndgetentcnt", "/dev/urandom", opts=opts)
        assert_errno(r, "EACCES", what="ioctl(RNDGETENTCNT)")


@pytest.mark.not_in_vm(NO_FILTER)
def test_i386_int80_abi(esc):
    """int 0x80 from a 64-bit process enters the i386 system-call table, which a filter
    written for x86-64 numbers would misread: inside, seccomp kills the process (SIGSYS)."""
    r = esc.outside("int80_getpid")
    if r.returncode < 0 or r.returncode > 128:
        pytest.skip(f"the host kernel has no usable i386 entry point (int 0x80 killed the "
                    f"probe with signal {-r.returncode if r.returncode < 0 else r.returncode}"
                    f"; IA32 emulation off or unsupported by the hypervisor)")
    assert_ok(r)
    r = esc.inside("int80_getpid")
    assert r.returncode == SIGSYS_EXIT, output(r)


@pytest.mark.not_in_vm(NO_FILTER)
def test_x32_abi(esc):
    """getpid with the x32 bit: ENOSYS on a kernel without x32, a pid with one; inside the
    process is killed by SIGSYS either way, never reaching the kernel's x32 table."""
    r = esc.outside("x32_getpid")
    assert r.returncode == 0 or "[ENOSYS]" in r.stderr, output(r)
    r = esc.inside("x32_getpid")
    assert r.returncode == SIGSYS_EXIT, output(r)


@pytest.mark.not_in_vm(NO_FILTER)
def test_landlock_generated_file(esc, landlock_abi, shared_tmp):
    """/etc/passwd inside is warden's generated file, bound on a writable mount and owned
    by the sandbox's uid 0: mount and file permissions would let uid 0 inside rewrite it.
    Landlock grants / read-only, so the write is refused. On the host, the same user
    opens a file it owns for writing."""
    if landlock_abi < 1:
        pytest.skip("no Landlock on this kernel")
    owned = os.path.join(shared_tmp, "owned")
    assert_ok(esc.outside("write", owned))
    assert_ok(esc.outside("open", owned, "w"))
    user0 = ["--user", "0"]
    r = esc.inside("stat", "/etc/passwd", opts=user0)
    assert_ok(r)
    assert r.stdout == "file rdev=0:0 uid=0\n", output(r)
    assert_ok(esc.inside("find", "/proc/self/mountinfo", " /etc/passwd rw,", opts=user0))
    r = esc.inside("open", "/etc/passwd", "w", opts=user0)
    assert_errno(r, "EACCES", what="/etc/passwd")
