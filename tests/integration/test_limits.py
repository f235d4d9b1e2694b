"""Resource limits: the values warden writes to the cgroups (read on the host while the
sandbox runs), and their effect inside; rootless runs without delegated cgroups say which
limits could not be applied."""
import os
import subprocess
import time

import pytest

from conftest import sandbox_pids


def _host_cgroup(pid, controller):
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(","):
                return f"/sys/fs/cgroup/{controller}{path}"
    raise AssertionError(f"{pid} has no {controller} group")


def _read(path):
    with open(path) as f:
        return f.read().strip()


def _cgroup_v1():
    return os.path.isdir("/sys/fs/cgroup/memory") and not os.path.exists(
        "/sys/fs/cgroup/cgroup.controllers")


@pytest.fixture
def running(warden):
    procs = []

    def start(*opts):
        proc = subprocess.Popen([warden, "run", "-q", *opts, "--", "sleep", "60"])
        procs.append(proc)
        return sandbox_pids(proc.pid)

    yield start
    for p in procs:
        p.kill()
        p.wait()


@pytest.mark.skipif(not _cgroup_v1(), reason="cgroup v1 controllers not on this host")
def test_v1_limits_written(running):
    init, cmd = running("--memory", "300M", "--pids", "77", "--cpus", "0.25")
    mem = _host_cgroup(cmd, "memory")
    assert "/warden/" in mem
    assert _read(f"{mem}/memory.limit_in_bytes") == str(300 << 20)
    if os.path.exists(f"{mem}/memory.memsw.limit_in_bytes"):
        assert _read(f"{mem}/memory.memsw.limit_in_bytes") == str(300 << 20)
    assert _read(f"{mem}/memory.swappiness") == "0"
    pids = _host_cgroup(cmd, "pids")
    assert _read(f"{pids}/pids.max") == "77"
    cpu = _host_cgroup(cmd, "cpu")
    assert _read(f"{cpu}/cpu.cfs_quota_us") == "25000"
    assert _read(f"{cpu}/cpu.cfs_period_us") == "100000"
    # init and the command are both inside
    assert _host_cgroup(init, "memory") == mem


@pytest.mark.skipif(not _cgroup_v1(), reason="cgroup v1 controllers not on this host")
def test_defaults_written_and_unlimited_cpu_skipped(running):
    _, cmd = running()
    assert _read(f"{_host_cgroup(cmd, 'memory')}/memory.limit_in_bytes") == str(1 << 30)
    assert _read(f"{_host_cgroup(cmd, 'pids')}/pids.max") == "512"
    assert "/warden/" not in _host_cgroup(cmd, "cpu")


def _cgroup_v2_only():
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _v2_group(pid):
    with open(f"/proc/{pid}/cgroup") as f:
        path = [line for line in f.read().split("\n") if line.startswith("0::")][0][3:]
    return "/sys/fs/cgroup" + path


@pytest.mark.skipif(not _cgroup_v2_only(), reason="not a cgroup v2 host")
def test_v2_limits_written(running):
    init, cmd = running("--memory", "300M", "--pids", "77", "--cpus", "0.25")
    group = _v2_group(cmd)
    assert "/warden/" in group
    assert _read(f"{group}/memory.max") == str(300 << 20)
    if os.path.exists(f"{group}/memory.swap.max"):
        assert _read(f"{group}/memory.swap.max") == "0"
    assert _read(f"{group}/pids.max") == "77"
    assert _read(f"{group}/cpu.max") == "25000 100000"
    assert _v2_group(init) == group


def test_v2_group_for_grouping(running):
    if not os.path.exists("/sys/fs/cgroup/unified/cgroup.procs") and not os.path.exists(
            "/sys/fs/cgroup/cgroup.controllers"):
        pytest.skip("no cgroup v2 hierarchy mounted")
    _, cmd = running()
    with open(f"/proc/{cmd}/cgroup") as f:
        v2 = [line for line in f.read().split("\n") if line.startswith("0::")][0]
    assert "/warden/" in v2


def test_cgroup_namespace_hides_the_host_hierarchy(root_runner, warden):
    r = root_runner.run([warden, "run", "-q", "--", "cat", "/proc/self/cgroup"])
    for line in r.stdout.strip().split("\n"):
        assert line.endswith(":/"), line


def test_memory_limit_kills_inside(runner, warden):
    if runner.mode == "rootless":
        pytest.skip("rootless without delegated cgroups applies no memory limit")
    prog = "x = bytearray(200 << 20); print('allocated')"
    r = runner.run([warden, "run", "-q", "--memory", "64M", "--", "python3", "-c", prog])
    assert r.returncode == 137
    r = runner.run([warden, "run", "-q", "--memory", "512M", "--", "python3", "-c", prog])
    assert r.stdout == "allocated\n"


FORKS = """
import os, time
kids = []
for i in range(40):
    try:
        pid = os.fork()
    except OSError as e:
        print("refused", e.errno)
        break
    if pid == 0:
        time.sleep(3)
        os._exit(0)
    kids.append(pid)
print("forked", len(kids))
"""


def test_pids_limit(runner, warden):
    r = runner.run([warden, "run", "-q", "--pids", "10", "--", "python3", "-c", FORKS])
    # init and python hold two of the ten
    assert r.stdout.split("\n")[:2] == ["refused 11", "forked 8"], r.stdout
    r = runner.run([warden, "run", "-q", "--pids", "100", "--", "python3", "-c", FORKS])
    assert r.stdout == "forked 40\n"


def test_rlimits(runner, warden):
    r = runner.run([warden, "run", "-q", "--pids", "64", "--", "sh", "-c",
                    "ulimit -n; ulimit -c; cat /proc/self/limits | grep 'Max processes'"])
    lines = r.stdout.split("\n")
    assert lines[0] == "4096"
    assert lines[1] == "0"
    assert lines[2].split()[2:4] == ["64", "64"]


def test_rootless_warns_about_limits_it_cannot_apply(rootless_runner, warden):
    if not _cgroup_v1():
        pytest.skip("this host has delegated cgroup v2 or none")
    r = rootless_runner.run([warden, "run", "--", "true"])
    assert r.returncode == 0
    assert ("warden: warning: memory limit not applied: no writable cgroup v1 memory "
            "controller for this user") in r.stderr
    assert "pids limit not applied" in r.stderr
    assert "RLIMIT_NPROC still bounds" in r.stderr
    r = rootless_runner.run([warden, "run", "-q", "--", "true"])
    assert r.stderr == ""
