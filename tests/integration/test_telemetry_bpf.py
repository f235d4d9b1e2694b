"""eBPF telemetry: real processes in a watched cgroup v2 group, and what the programs saw.

Each test runs build/tests/telwatch, which makes a fresh group, watches it with
warden_telemetry_attach(), runs a workload in it (usually `telwatch work KIND`), drains the
ring while it runs, and prints JSON lines: the events, then the counters
(tests/telemetry/telwatch.c). Needs root and a kernel with BTF; otherwise every test is
skipped with the reason warden_telemetry_available() gives.

Measured numbers (rates, attach and load costs) are printed for the record (`pytest -s`);
no test has a timing threshold.
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

import pytest

from conftest import BUILD

NR_CONNECT, NR_GETPPID, NR_OPENAT, NR_UNSHARE = 42, 110, 257, 272
EPERM, EACCES, ECONNREFUSED = 1, 13, 111


@pytest.fixture(scope="module")
def telwatch():
    path = os.path.join(BUILD, "tests", "telwatch")
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: run `make build` first")
    if os.geteuid() != 0:
        pytest.skip("BPF telemetry needs root")
    out = subprocess.run([path, "available"], capture_output=True, text=True, check=True)
    avail = json.loads(out.stdout)
    if not avail["available"]:
        pytest.skip("BPF telemetry unavailable: " + "; ".join(avail["why_not"]))
    return path


class Watch:
    """One telwatch run: its events by kind, its counters, the workload's report."""

    def __init__(self, stdout):
        # The workload's own output shares the pipe; telwatch writes whole JSON lines.
        self.lines = [json.loads(line) for line in stdout.splitlines()
                      if line.startswith('{"type":')]
        self.counts = next(x for x in self.lines if x["type"] == "counts")
        self.work = next((x for x in self.lines if x["type"] == "work"), None)
        self.attach = next((x for x in self.lines if x["type"] == "attach"), None)

    def events(self, kind):
        return [x for x in self.lines if x["type"] == kind]

    def syscalls(self, nr):
        return self.counts["syscalls"].get(str(nr), 0)


def watch(telwatch, *cmd, opts=(), timeout=120):
    r = subprocess.run([telwatch, *opts, "--", *cmd], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr
    return Watch(r.stdout)


def work(telwatch, *args, opts=(), timeout=120):
    return watch(telwatch, telwatch, "work", *map(str, args), opts=opts, timeout=timeout)


def landlock_abi():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(444, None, 0, 1)  # landlock_create_ruleset(NULL, 0, VERSION)


def test_unavailable_without_root_says_why(telwatch):
    d = tempfile.mkdtemp()
    try:
        os.chmod(d, 0o755)
        exe = shutil.copy2(telwatch, os.path.join(d, "telwatch"))
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            exe, "available"], capture_output=True, text=True, check=True)
        assert json.loads(r.stdout) == {"available": False,
                                        "why_not": ["bpf: Operation not permitted (not root)"]}
    finally:
        shutil.rmtree(d)


# ---- processes ------------------------------------------------------------------------


def test_exec_event_has_path_argv_and_realtime_stamp(telwatch):
    before = time.time_ns()
    w = watch(telwatch, "/bin/sh", "-c", "exit 3")
    after = time.time_ns()
    (ex,) = w.events("exec")
    assert ex["path"] == "/bin/sh"
    assert ex["argv"] == ["/bin/sh", "-c", "exit 3"] and ex["argc"] == 3
    assert ex["comm"] == "sh" and ex["uid"] == 0
    assert before <= ex["ts_ns"] <= after
    assert w.counts["execs"] == 1


def test_exec_argv_long_arguments_and_count(telwatch):
    long = "x" * 300
    w = watch(telwatch, "/bin/echo", long, "second", "third", "fourth")
    (ex,) = w.events("exec")
    assert ex["argc"] == 5
    assert ex["argv"][1] == "x" * 63  # the start of a long argument...
    assert ex["argv"][2:] == ["second", "third"]  # ...and the next ones still found


def test_exit_status_code_and_signal(telwatch):
    w = watch(telwatch, "/bin/sh", "-c", "exit 7")
    (ex,) = w.events("exit")
    assert (ex["code"], ex["signal"]) == (7, 0)
    w = work(telwatch, "kill", signal.SIGKILL)
    (ex,) = w.events("exit")
    assert (ex["code"], ex["signal"]) == (-1, signal.SIGKILL)
    assert ex["pid"] == w.events("exec")[0]["pid"]


def test_pid_ppid_uid_as_the_sandbox_sees_them(telwatch):
    """In a pid and user namespace: pid 1, parent outside (0), uid mapped (1234)."""
    w = watch(telwatch, "unshare", "--user", "--map-user=1234", "--map-group=1234", "--pid",
              "--fork", "/bin/sh", "-c", "exit 0")
    sh = next(e for e in w.events("exec") if e["path"] == "/bin/sh")
    assert (sh["pid"], sh["ppid"], sh["uid"]) == (1, 0, 1234)
    assert sh["host_pid"] > 1
    unshare = next(e for e in w.events("exec") if e["comm"] == "unshare")
    assert unshare["pid"] == unshare["host_pid"] and unshare["uid"] == 0


def test_forks_counted_exactly(telwatch):
    w = work(telwatch, "fork", 7)
    assert w.counts["forks"] == 7
    assert len(w.events("exit")) == 8  # the 7 children and the workload


# ---- system call counts ---------------------------------------------------------------


def test_syscall_counts_exact(telwatch):
    w = work(telwatch, "getppid", 12345)
    assert w.syscalls(NR_GETPPID) == 12345


def test_syscall_counts_exact_across_threads_that_end(telwatch):
    # Each thread keeps its own counts and adds them to the sandbox's as it exits.
    w = work(telwatch, "getppid-threads", 8, 5000)
    assert w.syscalls(NR_GETPPID) == 8 * 5000


def test_syscall_counts_of_live_tasks_are_read(telwatch):
    # The child that made the calls is still alive when the counts are read: its counts
    # are still in its own storage, and must be read from there.
    w = work(telwatch, "getppid-linger", 4321)
    assert w.syscalls(NR_GETPPID) == 4321


def test_processes_outside_the_group_are_never_counted(telwatch):
    w = work(telwatch, "getppid", 1000, opts=["--outside"])
    assert w.counts["syscalls"] == {} and w.counts["refused"] == {}
    assert w.counts["events"] == w.counts["execs"] == w.counts["forks"] == 0
    assert w.counts["delivered"] == 0


# ---- connect ----------------------------------------------------------------------------


@pytest.fixture
def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s.getsockname()[1]
    s.close()


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_connect_success_and_refused(telwatch, listener):
    w = work(telwatch, "connect", "127.0.0.1", listener)
    (c,) = w.events("connect")
    assert (c["family"], c["addr"], c["port"], c["ret"]) == (socket.AF_INET, "127.0.0.1",
                                                              listener, 0)
    port = closed_port()
    w = work(telwatch, "connect", "127.0.0.1", port)
    (c,) = w.events("connect")
    assert (c["addr"], c["port"], c["ret"]) == ("127.0.0.1", port, -ECONNREFUSED)
    assert w.work["errno"] == ECONNREFUSED


def test_connect_unix_path_and_abstract(telwatch):
    d = tempfile.mkdtemp()
    path = os.path.join(d, "s")
    named, abstract = socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)
    try:
        named.bind(path)
        named.listen(1)
        abstract.bind("\0warden-telemetry-test")
        abstract.listen(1)
        w = work(telwatch, "unix-connect", path)
        (c,) = w.events("connect")
        assert (c["family"], c["path"], c["ret"]) == (socket.AF_UNIX, path, 0)
        w = work(telwatch, "unix-connect", "@warden-telemetry-test")
        (c,) = w.events("connect")
        assert (c["path"], c["ret"]) == ("@warden-telemetry-test", 0)
    finally:
        named.close()
        abstract.close()
        shutil.rmtree(d)


# ---- refusals ---------------------------------------------------------------------------


def test_seccomp_refusals_counted_exactly_and_sampled(telwatch):
    w = work(telwatch, "seccomp-errno", 10)
    assert w.work["refused"] == 10
    assert w.counts["refused_seccomp"] == {str(NR_UNSHARE): 10}
    assert w.counts["refused"] == {str(NR_UNSHARE): 10}
    assert w.counts["refused_landlock"] == {}
    assert w.syscalls(NR_UNSHARE) == 0  # refused before they entered
    ev = w.events("refused")
    assert [e["count"] for e in ev] == [1, 2, 4, 8]
    assert {(e["nr"], e["err"], e["layer"]) for e in ev} == {(NR_UNSHARE, EPERM, "seccomp")}


def test_seccomp_kill_is_a_refusal_with_sigsys(telwatch):
    w = work(telwatch, "seccomp-kill")
    (r,) = w.events("refused")
    assert (r["nr"], r["err"], r["layer"]) == (NR_UNSHARE, 0, "seccomp")
    (ex,) = w.events("exit")
    assert ex["signal"] == signal.SIGSYS


def test_landlock_refusal(telwatch):
    if landlock_abi() < 1:
        pytest.skip("Landlock is not enabled")
    why = subprocess.run([telwatch, "available"], capture_output=True, text=True).stdout
    if "Landlock refusals off" in why:
        pytest.skip(json.loads(why)["why_not"])
    w = work(telwatch, "landlock-open", "/etc/hostname")
    assert w.work["errno"] == EACCES
    assert w.counts["refused_landlock"] == {str(NR_OPENAT): 1}
    assert w.counts["refused_seccomp"] == {}
    (r,) = w.events("refused")
    assert (r["nr"], r["err"], r["layer"], r["count"]) == (NR_OPENAT, EACCES, "landlock", 1)


def test_permission_errors_of_the_kernel_are_not_landlock(telwatch):
    """A file-mode EACCES (no Landlock involved) must not count as a Landlock refusal."""
    w = watch(telwatch, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
              "cat", "/etc/shadow")
    assert any(e["comm"] == "cat" for e in w.events("exit"))
    assert w.counts["refused"] == {}
    assert w.events("refused") == []


def test_landlock_network_refusal(telwatch, listener):
    if landlock_abi() < 4:
        pytest.skip("Landlock ABI < 4: no TCP rules")
    w = work(telwatch, "landlock-connect", listener)
    assert w.work["errno"] == EACCES
    assert w.counts["refused_landlock"] == {str(NR_CONNECT): 1}
    (c,) = w.events("connect")
    assert (c["port"], c["ret"]) == (listener, -EACCES)


def test_landlock_lsm_hook_fallback(telwatch):
    """The fallback for kernels without Landlock's denial counts, loaded as its own set;
    it needs BPF trampolines (fexit), which some kernels refuse."""
    root = tempfile.mkdtemp(prefix="warden-test-", dir="/sys/fs/bpf")
    try:
        w = work(telwatch, "landlock-open", "/etc/hostname",
                 opts=["--pin-root", root, "--lsm-hooks"])
        sets = os.listdir(root)
        assert len(sets) == 1 and sets[0].endswith("-lsmhooks")
        if not any(n.startswith("wd_ll_") for n in os.listdir(os.path.join(root, sets[0]))):
            pytest.skip("this kernel refuses fentry/fexit programs: no LSM-hook fallback")
        assert w.counts["refused_landlock"] == {str(NR_OPENAT): 1}
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---- OOM ----------------------------------------------------------------------------------


def test_oom_kill_attributed_to_the_victims_group(telwatch):
    hybrid = not os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    if hybrid and not os.path.isdir("/sys/fs/cgroup/memory"):
        pytest.skip("no cgroup memory controller to set a limit with")
    w = work(telwatch, "oom", 512, opts=["--memory", str(32 << 20)])
    (o,) = w.events("oom")
    assert o["victim_pid"] == o["pid"] == w.work["pid"]
    (ex,) = w.events("exit")
    assert ex["signal"] == signal.SIGKILL


# ---- the ring and its drop counter ---------------------------------------------------------


def test_drop_counter_exact_when_the_ring_is_too_small(telwatch):
    """A 4 KiB ring, not drained while 200 programs run: most records are lost, and every
    loss is counted."""
    w = work(telwatch, "execs", 200, "/bin/true", opts=["--ring", "4096", "--no-drain",
                                                        "--quiet"])
    c = w.counts
    assert c["execs"] == 201
    assert c["events"] == 2 * 201  # an exec and an exit each
    assert c["drops"] > 0
    assert c["delivered"] + c["drops"] == c["events"]


def test_a_reused_ring_delivers_nothing_of_its_previous_sandbox(telwatch):
    """Rings are pooled: the next sandbox given a ring must not see what the previous one
    left unread, and its own counts stay exact."""
    root = tempfile.mkdtemp(prefix="warden-test-", dir="/sys/fs/bpf")
    try:
        first = work(telwatch, "execs", 3, "/bin/true",
                     opts=["--pin-root", root, "--ring", "4096", "--no-drain", "--leave"])
        assert first.counts["delivered"] == 0 and first.counts["events"] == 8
        second = watch(telwatch, "/bin/sh", "-c", "exit 5",
                       opts=["--pin-root", root, "--ring", "4096"])
        (ex,) = second.events("exec")
        assert ex["path"] == "/bin/sh"
        assert len(second.events("exit")) == 1
        c = second.counts
        assert c["events"] == c["delivered"] == 2 and c["drops"] == 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_exec_storm_loses_nothing_with_the_default_ring(telwatch):
    w = work(telwatch, "exec-storm", 3, 2, "/bin/busybox", "true", opts=["--quiet"])
    c = w.counts
    assert c["drops"] == 0
    assert c["delivered_by_kind"]["exec"] == c["execs"] == w.work["execs"] + 1
    assert c["delivered"] == c["events"]
    print(f"\nexec storm: {w.work['execs']} execs in {w.work['seconds']:.2f} s = "
          f"{w.work['rate']:.0f}/s, {c['events']} records, {c['drops']} dropped")


def test_connect_storm_loses_nothing_with_the_default_ring(telwatch):
    w = work(telwatch, "connect-storm", 3, 2, opts=["--quiet"])
    c = w.counts
    assert c["drops"] == 0
    assert c["delivered_by_kind"]["connect"] == w.work["connects"]
    assert c["delivered"] == c["events"]
    print(f"\nconnect storm: {w.work['connects']} connects in {w.work['seconds']:.2f} s = "
          f"{w.work['rate']:.0f}/s, {c['events']} records, {c['drops']} dropped")


# ---- loading, pinning, attach -------------------------------------------------------------


def test_load_once_pin_and_attach_cost(telwatch):
    """A fresh pin root: the first attach loads and pins; two wardens starting at once load
    one set; later attaches open the pins."""
    root = tempfile.mkdtemp(prefix="warden-test-", dir="/sys/fs/bpf")
    try:
        procs = [subprocess.Popen([telwatch, "--pin-root", root, "bench-attach", "1"],
                                  stdout=subprocess.PIPE, text=True) for _ in range(2)]
        first = [json.loads(p.communicate()[0])["attach_ns"][0] for p in procs]
        assert all(p.returncode == 0 for p in procs)
        (tag,) = os.listdir(root)
        pins = set(os.listdir(os.path.join(root, tag)))
        assert {"info", "pcpu", "shared", "rings", "dead", "wd_sys_enter", "wd_sys_exit",
                "wd_exec", "wd_exit", "wd_fork"} <= pins
        # Pinned links keep the programs attached with no loader alive: a new process
        # attaches to the set and sees events.
        w = watch(telwatch, "/bin/true", opts=["--pin-root", root])
        assert len(w.events("exec")) == 1
        fresh = [json.loads(subprocess.run(
            [telwatch, "--pin-root", root, "bench-attach", "1"], capture_output=True,
            text=True, check=True).stdout)["attach_ns"][0] for _ in range(10)]
        again = json.loads(subprocess.run([telwatch, "--pin-root", root, "bench-attach", "50"],
                                          capture_output=True, text=True,
                                          check=True).stdout)
        med = sorted(again["attach_ns"])[25]
        print(f"\nfirst load + attach: {max(first) / 1e6:.1f} ms (the racing other: "
              f"{min(first) / 1e6:.1f} ms); attach in a fresh process, set loaded: median "
              f"{sorted(fresh)[5] / 1e3:.0f} us; repeated attach in one process: median "
              f"{med / 1e3:.0f} us; detach median {sorted(again['detach_ns'])[25] / 1e3:.0f} us")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _dump_keys(path):
    out = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", path], capture_output=True,
                         text=True, check=True).stdout
    keys = []
    for entry in json.loads(out):
        raw = entry["key"]
        keys.append(struct.unpack("<Q", bytes(int(b, 16) for b in raw))[0]
                    if isinstance(raw, list) else int(raw))
    return keys


def test_groups_removed_without_detach_are_collected(telwatch):
    """A supervisor killed with SIGKILL never detaches; once its group is removed, the next
    attach removes its entries and gives its ring back to the pool."""
    if not shutil.which("bpftool"):
        pytest.skip("bpftool not installed")
    root = tempfile.mkdtemp(prefix="warden-test-", dir="/sys/fs/bpf")
    try:
        p = subprocess.Popen([telwatch, "--pin-root", root, "--", "sleep", "60"],
                             stdout=subprocess.PIPE, text=True)
        attach = json.loads(p.stdout.readline())
        cgid = attach["cgroup_id"]
        (tag,) = os.listdir(root)
        slot_of = os.path.join(root, tag, "slot_of")
        assert cgid in _dump_keys(slot_of)
        p.kill()
        p.wait()
        group = next(os.path.join(d, g) for d in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")
                     if os.path.isdir(d) for g in os.listdir(d)
                     if g.startswith(f"telwatch-{p.pid}-"))
        with open(os.path.join(group, "cgroup.kill"), "w") as f:
            f.write("1")
        for _ in range(100):
            try:
                os.rmdir(group)
                break
            except OSError:
                time.sleep(0.02)
        assert cgid in _dump_keys(os.path.join(root, tag, "dead"))
        watch(telwatch, "/bin/true", opts=["--pin-root", root])
        assert cgid not in _dump_keys(slot_of)
        assert cgid not in _dump_keys(os.path.join(root, tag, "pcpu"))
        assert _dump_keys(os.path.join(root, tag, "dead")) == []
    finally:
        shutil.rmtree(root, ignore_errors=True)
