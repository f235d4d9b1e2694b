"""Resource bombs: processes (--pids), memory (--memory) and disk (--tmp-size) are bounded
inside, where the same demand succeeds on the host, and the host is fine afterwards.
"""
import os

import pytest

from conftest import assert_errno, assert_ok, output

FORKS = "64"


def test_fork_bomb(esc):
    """--pids 16 (a pids cgroup where one is writable, RLIMIT_NPROC always): the 17th
    process cannot start, the sandbox still ends normally, the host can fork afterwards."""
    r = esc.outside("fork_n", FORKS)
    assert_ok(r)
    assert r.stdout == f"started {FORKS} of {FORKS}\n", output(r)
    r = esc.inside("fork_n", FORKS, opts=["--pids", "16"])
    assert_errno(r, "EAGAIN", what="fork")
    started = int(r.stdout.split()[1])
    assert started < 16, output(r)
    assert_ok(esc.outside("fork_n", FORKS))


def test_memory_bomb(esc):
    """--memory 64M: touching 256 MiB gets the sandbox OOM-killed (137 = 128 + SIGKILL).
    (A guest's RAM is --memory, its own kernel's share included: 128M there.)"""
    assert_ok(esc.outside("alloc", "256"))
    argv = esc.inside_argv("alloc", "256", opts=["--memory", "128M" if esc.vm else "64M"])
    argv.remove("-q")  # keep warden's warnings: they say whether the limit was applied
    r = esc.run(argv)
    if esc.mode == "rootless" and "memory limit not applied" in r.stderr:
        pytest.skip("no cgroup memory controller is delegated to the test user on this "
                    "host; warden runs the sandbox and says so: " + r.stderr.strip())
    if esc.vm and r.returncode == 1:
        # A guest's kernel may refuse the allocation outright: its RAM is all it has.
        assert_errno(r, "ENOMEM", what="malloc")
    else:
        assert r.returncode == 137, output(r)
    assert "allocated" not in r.stdout, output(r)
    assert_ok(esc.outside("alloc", "256"))


@pytest.mark.parametrize("path", ["/tmp", "/var/tmp", "/dev/shm", "/home/agent"])
def test_disk_bomb(esc, shared_tmp, path):
    """--tmp-size 16M bounds every writable place together; 32 MiB fit on the host."""
    host_file = os.path.join(shared_tmp, "bomb")
    try:
        r = esc.outside("fill", host_file, "32")
        assert_ok(r)
    finally:
        if os.path.exists(host_file):
            os.unlink(host_file)
    r = esc.inside("fill", f"{path}/bomb", "32", opts=["--tmp-size", "16M"])
    assert_errno(r, "ENOSPC", what="write")
