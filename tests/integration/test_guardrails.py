"""Guardrails act on what real sandboxes do: kill, freeze (and thaw), alert and log, with
an event and an audit record for every decision."""
import json
import os
import re
import subprocess
import textwrap
import time

import pytest


def write_policy(tmp, text):
    path = os.path.join(tmp, "guard.yaml")
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    os.chmod(path, 0o644)
    return path


def read_events(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def audit_records(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.fixture
def audit_log(shared_tmp):
    return os.path.join(shared_tmp, "audit.log")


def run_guarded(runner, warden, tmp, audit_log, policy, *cmd, opts=(), timeout=60):
    events = os.path.join(tmp, "events.jsonl")
    argv = [warden, "run", "-q", "--policy", write_policy(tmp, policy), "--events", events,
            "--audit-log", audit_log, "--audit-key", audit_log + ".key", *opts, "--", *cmd]
    r = runner.run(argv, timeout=timeout)
    return r, read_events(events)


def guard_events(evs):
    return [e for e in evs if e["kind"] == "guardrail"]


def test_exec_denylist_kills(root_runner, warden, shared_tmp, audit_log):
    policy = """\
        guardrails:
          - name: no-sleep
            when: {exec: [sleep]}
            action: kill
        """
    start = time.monotonic()
    r, evs = run_guarded(root_runner, warden, shared_tmp, audit_log, policy, "sh", "-c",
                         "echo before; sleep 30; echo after")
    assert time.monotonic() - start < 25
    assert r.returncode == 137
    assert r.stdout == "before\n"
    assert "warden: guardrail no-sleep killed the sandbox" in r.stderr
    g = guard_events(evs)
    assert g and g[0]["rule"] == "no-sleep" and g[0]["action"] == "kill"
    assert g[0]["evidence"] == "exec of /usr/bin/sleep"
    assert evs[-1]["kind"] == "sandbox.end" and evs[-1]["killed_by"] == "no-sleep"
    recs = audit_records(audit_log)
    fired = [x for x in recs if x["kind"] == "guard.fire"]
    assert fired and fired[0]["rule"] == "no-sleep" and fired[0]["evidence"] == \
        "exec of /usr/bin/sleep" and fired[0]["action"] == "kill"
    assert [x["kind"] for x in recs if x.get("sandbox") == evs[0]["sandbox"]] == [
        "sandbox.create", "sandbox.exec", "guard.fire", "sandbox.exit", "sandbox.destroy"]


def test_exec_allowlist_alerts_and_goes_on(root_runner, warden, shared_tmp, audit_log):
    policy = """\
        guardrails:
          - name: only-usr-bin
            when: {exec_outside: ["/usr/bin/*"]}
            action: alert
        """
    r, evs = run_guarded(root_runner, warden, shared_tmp, audit_log, policy, "sh", "-c",
                         "/usr/bin/true; /usr/sbin/nologin >/dev/null; echo done")
    assert r.stdout == "done\n"
    g = guard_events(evs)
    assert [e["evidence"] for e in g] == [
        "exec of /usr/sbin/nologin, outside the allowed programs"], g
    assert g[0]["attention"] is True


def test_connect_to_denied_destination_logs(root_runner, warden, shared_tmp, audit_log):
    policy = """\
        guardrails:
          - name: metadata
            when: {connect_to: ["169.254.169.254:80", "10.0.0.0/8"]}
            action: log
        """
    prog = ("import socket\n"
            "for addr in (('169.254.169.254', 80), ('10.1.2.3', 443), ('192.0.2.1', 80)):\n"
            "    try: socket.create_connection(addr, timeout=1)\n"
            "    except OSError: pass\n")
    r, evs = run_guarded(root_runner, warden, shared_tmp, audit_log, policy, "python3", "-c",
                         prog)
    assert r.returncode == 0
    g = guard_events(evs)
    assert [e["evidence"] for e in g] == ["connect to 169.254.169.254:80",
                                          "connect to 10.1.2.3:443"]
    assert all(e["attention"] is False for e in g)


def test_pids_threshold_kills(runner, warden, shared_tmp, audit_log):
    if runner.mode == "rootless":
        pytest.skip("rootless without delegated cgroups has no pids count")
    policy = """\
        guardrails:
          - {name: too-many, when: {pids_above: 20}, action: kill}
        """
    r, evs = run_guarded(runner, warden, shared_tmp, audit_log, policy, "sh", "-c",
                         "for i in $(seq 40); do sleep 20 & done; wait")
    assert r.returncode == 137
    g = guard_events(evs)
    assert g[0]["rule"] == "too-many"
    assert re.match(r"\d+ processes and threads, above 20", g[0]["evidence"]), g


def test_wall_and_cpu_time(root_runner, warden, shared_tmp, audit_log):
    policy = """\
        guardrails:
          - {name: busy, when: {cpu_time_above: 0.5}, action: alert}
          - {name: slow, when: {wall_time_above: 1.5}, action: kill}
        """
    r, evs = run_guarded(root_runner, warden, shared_tmp, audit_log, policy, "sh", "-c",
                         "while :; do :; done")
    assert r.returncode == 137
    names = [e["rule"] for e in guard_events(evs)]
    assert names == ["busy", "slow"], names


def test_refused_threshold(root_runner, warden, shared_tmp, audit_log):
    policy = """\
        guardrails:
          - {name: probing, when: {refused_syscalls_above: 10}, action: kill}
        """
    prog = ("import ctypes, time; libc = ctypes.CDLL(None)\n"
            "for i in range(50): libc.syscall(250, 0)\n"
            "time.sleep(5); print('survived')\n")
    r, evs = run_guarded(root_runner, warden, shared_tmp, audit_log, policy, "python3", "-c",
                         prog)
    assert r.returncode == 137 and "survived" not in r.stdout
    assert guard_events(evs)[0]["rule"] == "probing"


def _cpu_ticks(pids):
    out = 0
    for p in pids:
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out += int(fields[11]) + int(fields[12])  # utime + stime
    return out


def _frozen(pid):
    """Frozen as the kernel says (cgroup.events of the process's v2 group). A task frozen by
    the v2 freezer sleeps (state S) in the freezer's trap, unlike a v1-frozen one (D), so
    the test also checks that it makes no progress."""
    with open(f"/proc/{pid}/cgroup") as f:
        v2 = [line[3:].strip() for line in f if line.startswith("0::")][0]
    root = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else \
        "/sys/fs/cgroup"
    with open(f"{root}{v2}/cgroup.events") as f:
        return "frozen 1" in f.read()


def test_memory_threshold_freezes_then_thaw(root_runner, warden, shared_tmp, audit_log):
    policy = """\
        guardrails:
          - {name: hog, when: {memory_peak_above: 80M}, action: freeze}
        """
    events = os.path.join(shared_tmp, "events.jsonl")
    prog = ("x = bytearray(120 << 20)\n"
            "n = 0\n"
            "while n < 3 * 10**7: n += 1\n"
            "print('finished')\n")
    proc = subprocess.Popen([warden, "run", "-q", "--policy", write_policy(shared_tmp, policy),
                             "--events", events, "--audit-log", audit_log, "--audit-key",
                             audit_log + ".key", "--", "python3", "-c", prog],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        frozen = None
        for _ in range(200):
            if os.path.exists(events):
                evs = read_events(events)
                if guard_events(evs):
                    frozen = evs
                    break
            time.sleep(0.05)
        assert frozen, "the guardrail did not fire"
        sandbox = frozen[0]["sandbox"]
        g = guard_events(frozen)[0]
        assert g["action"] == "freeze" and g["rule"] == "hog"
        # the sandbox's processes are frozen, and stay so
        kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                              text=True).stdout.split()
        init = kids[0]
        cmd = subprocess.run(["pgrep", "-P", init], capture_output=True,
                             text=True).stdout.split()
        assert cmd and all(_frozen(p) for p in cmd)
        before = _cpu_ticks(cmd)
        time.sleep(1)
        assert _cpu_ticks(cmd) == before, "a frozen process ran"
        assert proc.poll() is None
        stats = json.loads(root_runner.run([warden, "stats", sandbox]).stdout)
        assert stats["frozen"] is True
        r = root_runner.run([warden, "thaw", sandbox])
        assert r.returncode == 0, r.stderr
        out, err = proc.communicate(timeout=30)
        assert out == "finished\n"
        assert proc.returncode == 0
        kinds = [x["kind"] for x in audit_records(audit_log) if x.get("sandbox") == sandbox]
        assert kinds == ["sandbox.create", "sandbox.exec", "guard.fire", "sandbox.thaw",
                         "sandbox.exit", "sandbox.destroy"], kinds
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def first_sandbox_id(events):
    """The id in the first event of a stream being written, once it is there (5 s at most)."""
    for _ in range(100):
        if os.path.exists(events) and os.path.getsize(events):
            return read_events(events)[0]["sandbox"]
        time.sleep(0.05)
    return None


def test_kill_and_freeze_by_hand(root_runner, warden, shared_tmp):
    events = os.path.join(shared_tmp, "events.jsonl")
    proc = subprocess.Popen([warden, "run", "-q", "--events", events, "--", "sleep", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sandbox = first_sandbox_id(events)
        assert sandbox
        assert root_runner.run([warden, "freeze", sandbox]).returncode == 0
        assert json.loads(root_runner.run([warden, "stats", sandbox]).stdout)["frozen"]
        assert root_runner.run([warden, "kill", sandbox]).returncode == 0
        proc.wait(timeout=10)
        assert proc.returncode == 137
        by = [e["by"] for e in read_events(events) if e["kind"] in ("freeze", "kill")]
        assert by == ["control", "control"]
        r = root_runner.run([warden, "kill", sandbox])
        assert r.returncode == 125 and f"no running sandbox {sandbox}" in r.stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_control_verbs_errors(root_runner, warden):
    r = root_runner.run([warden, "thaw", "nothex!"])
    assert r.returncode == 125 and '"nothex!" is not a sandbox id' in r.stderr
    r = root_runner.run([warden, "kill", "0123456789abcdef"])
    assert r.returncode == 125 and "no running sandbox 0123456789abcdef" in r.stderr
    r = root_runner.run([warden, "freeze"])
    assert r.returncode == 125 and "usage: warden freeze SANDBOX-ID" in r.stderr


def test_frozen_sandbox_dies_with_its_supervisor(root_runner, warden, shared_tmp):
    """Frozen processes cannot run their own exit path: the sandbox must still end when its
    supervisor is killed (the parent-death signal reaches frozen tasks)."""
    events = os.path.join(shared_tmp, "events.jsonl")
    proc = subprocess.Popen([warden, "run", "-q", "--events", events, "--", "sleep", "60"])
    try:
        sandbox = first_sandbox_id(events)
        init = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                              text=True).stdout.split()[0]
        assert root_runner.run([warden, "freeze", sandbox]).returncode == 0
        assert _frozen(init)
        proc.kill()
        proc.wait()
        for _ in range(100):
            if not os.path.exists(f"/proc/{init}"):
                break
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{init}"), "the frozen sandbox outlived its supervisor"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
