"""Device grants (devices:, --device) with stand-in character devices made by the test with
mknod, in a major number of the kernel's range for local use that no driver registered
here. Opening such a node fails with ENXIO once every check before the driver passed (the
mount table, Landlock, the device cgroup): ENXIO means "let through", EPERM "refused by
the device cgroup", EACCES "refused by Landlock", ENOENT "not there".

The device cgroup is shown to enforce on its own, on each hierarchy this host has: a host
process (root, outside any user namespace, so mknod works) joins only the sandbox's v1
devices group, or only its cgroup v2 group with warden's BPF device program, and makes and
opens nodes there, after doing the same outside first."""
import json
import os
import subprocess
import sys

import pytest

from conftest import sandbox_pids

OPEN = r"""
import errno, json, os, sys
out = {}
for spec in sys.argv[1:]:
    path, mode = spec.rsplit(":", 1)
    try:
        os.close(os.open(path, {"r": os.O_RDONLY, "w": os.O_WRONLY}[mode]))
        out[spec] = "OK"
    except OSError as e:
        out[spec] = errno.errorcode[e.errno]
print(json.dumps(out))
"""

# For each node spec "PATH:MAJOR:MINOR": makes a node (mknod) and opens the node made
# outside for reading; first outside, then after joining the cgroup given as argv[1] (its
# cgroup.procs). Inside, the node opened is the one mknod made outside: having a node does
# not help.
IN_CGROUP = r"""
import errno, json, os, stat, sys
def attempt(tag):
    res = {}
    for spec in sys.argv[2:]:
        path, major, minor = spec.rsplit(":", 2)
        node = f"{path}.{tag}"
        try:
            os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(int(major), int(minor)))
            res[f"mknod {major}:{minor}"] = "OK"
        except OSError as e:
            res[f"mknod {major}:{minor}"] = errno.errorcode[e.errno]
        try:
            os.close(os.open(f"{path}.outside", os.O_RDONLY))
            res[f"open {major}:{minor}"] = "OK"
        except OSError as e:
            res[f"open {major}:{minor}"] = errno.errorcode[e.errno]
    return res
before = attempt("outside")
with open(sys.argv[1], "w") as f:
    f.write(str(os.getpid()))
print(json.dumps({"outside": before, "inside": attempt("inside")}))
"""


@pytest.fixture(scope="module")
def nodes(stand_in_devices):
    return stand_in_devices


def _run(runner, warden, tmp, args, code, *argv, policy=None):
    pol = []
    if policy:
        path = os.path.join(tmp, "policy.yaml")
        with open(path, "w") as f:
            f.write(policy)
        os.chmod(path, 0o644)
        pol = ["--policy", path]
    return runner.run([warden, "run", "--audit-log", os.path.join(tmp, "audit.log"),
                       "--audit-key", os.path.join(tmp, "audit.key"), *pol, *args, "--",
                       "python3", "-c", code, *argv])


def _opens(r):
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_only_granted_nodes_appear(runner, warden, nodes, shared_tmp):
    r = _run(runner, warden, shared_tmp, ["-q", "--device", nodes["a"]],
             "import os,sys,json; print(json.dumps(sorted(os.listdir(sys.argv[1]))))",
             nodes["dir"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == ["a"]
    r = _run(runner, warden, shared_tmp, ["-q", "--device", nodes["a"]], OPEN,
             nodes["a"] + ":r", nodes["b"] + ":r", "/dev/null:w")
    assert _opens(r) == {nodes["a"] + ":r": "ENXIO", nodes["b"] + ":r": "ENOENT",
                         "/dev/null:w": "OK"}
    # without a grant, neither is there
    r = _run(runner, warden, shared_tmp, ["-q"], OPEN, nodes["a"] + ":r")
    assert _opens(r) == {nodes["a"] + ":r": "ENOENT"}


def test_read_only_grant_refused_by_device_cgroup(root_runner, warden, nodes, shared_tmp):
    """With Landlock off, the node's mount and its 0666 mode allow writing: only the device
    cgroup stands between an `r` grant and a write open. The rw grant shows the same open
    passing."""
    off = "security:\n  landlock: off\n"
    a = nodes["a"]
    r = _run(root_runner, warden, shared_tmp, ["-q", "--device", a + ":r"], OPEN,
             a + ":r", a + ":w", policy=off)
    assert _opens(r) == {a + ":r": "ENXIO", a + ":w": "EPERM"}
    r = _run(root_runner, warden, shared_tmp, ["-q", "--device", a + ":rw"], OPEN,
             a + ":r", a + ":w", policy=off)
    assert _opens(r) == {a + ":r": "ENXIO", a + ":w": "ENXIO"}


def test_read_only_grant_rootless(rootless_runner, warden, nodes, shared_tmp):
    """Rootless there is no device cgroup (warden says so); Landlock still refuses writing
    to a node granted `r`."""
    a = nodes["a"]
    r = _run(rootless_runner, warden, shared_tmp, ["--device", a + ":r"], OPEN, a + ":r",
             a + ":w")
    assert _opens(r) == {a + ":r": "ENXIO", a + ":w": "EACCES"}
    assert "no device cgroup without root" in r.stderr


def _groups(pid):
    out = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            out[ctrls] = path
    return out


@pytest.mark.parametrize("hierarchy", ["v1", "v2"])
def test_device_cgroup_enforces_alone(hierarchy, warden, nodes, tmp_path):
    """A host root process in just one of the sandbox's device cgroups: mknod and open of a
    node that is not granted fail there (EPERM) after succeeding outside (ENXIO: the
    absent driver); the granted node (access rwm) can be made and opened."""
    if hierarchy == "v1" and not os.path.isdir("/sys/fs/cgroup/devices"):
        pytest.skip("no cgroup v1 devices controller on this host")
    unified = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else \
        "/sys/fs/cgroup"
    if hierarchy == "v2" and not os.path.exists(os.path.join(unified, "cgroup.procs")):
        pytest.skip("no cgroup v2 hierarchy on this host")
    sup = subprocess.Popen([warden, "run", "-q", "--audit-log", str(tmp_path / "audit.log"),
                            "--audit-key", str(tmp_path / "audit.key"),
                            "--device", nodes["a"] + ":rwm", "--", "sleep", "30"])
    try:
        groups = _groups(sandbox_pids(sup.pid)[0])
        if hierarchy == "v1":
            group = "/sys/fs/cgroup/devices" + groups["devices"]
        else:
            group = unified + groups[""]
        assert "/warden/" in group, groups
        major = nodes["major"]
        work = tmp_path / "nodes"
        work.mkdir()
        r = subprocess.run([sys.executable, "-c", IN_CGROUP, os.path.join(group, "cgroup.procs"),
                            f"{work}/granted:{major}:0", f"{work}/other:{major}:1"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        res = json.loads(r.stdout)
        everything_works = {f"mknod {major}:0": "OK", f"open {major}:0": "ENXIO",
                            f"mknod {major}:1": "OK", f"open {major}:1": "ENXIO"}
        assert res["outside"] == everything_works
        assert res["inside"] == {f"mknod {major}:0": "OK", f"open {major}:0": "ENXIO",
                                 f"mknod {major}:1": "EPERM", f"open {major}:1": "EPERM"}
    finally:
        sup.kill()
        sup.wait()


def test_grant_errors(root_runner, warden, nodes, shared_tmp):
    cases = [
        (["--device", "/dev/warden-no-such-node"],
         "devices[0]: /dev/warden-no-such-node: No such file or directory"),
        (["--device", "/etc/passwd"], "devices[0]: /etc/passwd: only nodes under /dev"),
        (["--device", "/dev/shm"], "devices[0]: /dev/shm: not a device node"),
        (["--device", nodes["a"] + ":x"], "--device: \"" + nodes["a"] + ":x\": access letters"),
        (["--device", "dev/a"], "is not an absolute, normalized path"),
    ]
    for args, want in cases:
        r = root_runner.run([warden, "run", "-q", *args, "--", "true"])
        assert r.returncode == 125, (args, r.stderr)
        assert want in r.stderr, (args, r.stderr)


def test_grant_is_audited(root_runner, warden, nodes, shared_tmp):
    r = _run(root_runner, warden, shared_tmp, ["-q", "--device", nodes["a"] + ":r"], "pass")
    assert r.returncode == 0, r.stderr
    with open(os.path.join(shared_tmp, "audit.log")) as f:
        recs = [json.loads(line) for line in f if '"device.grant"' in line]
    assert len(recs) == 1
    assert recs[0]["devices"] == [{"path": nodes["a"], "device": f"c {nodes['major']}:0",
                                   "access": "r"}]
    assert recs[0]["gpus"] == []


def test_policy_file_grant(runner, warden, nodes, shared_tmp):
    a = nodes["a"]
    r = _run(runner, warden, shared_tmp, ["-q"], OPEN, a + ":r", nodes["b"] + ":r",
             policy=f"devices:\n  - {{path: {a}, access: r}}\n")
    assert _opens(r) == {a + ":r": "ENXIO", nodes["b"] + ":r": "ENOENT"}
