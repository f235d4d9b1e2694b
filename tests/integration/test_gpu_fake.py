"""warden's GPU logic without a GPU: the grant, the locks, the watcher's attribution, the
gpu.memory guardrail and the scrub's orchestration, driven through test doubles of NVML and
libcuda (tests/gpu/fake/; they measure nothing, so nothing here is a GPU result: those are
tests/gpu/run.sh's).

Each command runs in a private mount namespace whose /dev is a tmpfs holding the usual
nodes (bound from the host) and stand-in NVIDIA nodes made with mknod in a major for local
use, so the host's /dev is never touched. warden-gpu finds the doubles through
LD_LIBRARY_PATH."""
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import BUILD, _free_char_major

FAKE = os.path.join(BUILD, "tests", "gpu", "fake")
GPU0 = "GPU-00000000-0000-4000-8000-000000000000"
GPU1 = "GPU-11111111-1111-4111-8111-111111111111"

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                reason="needs root and unshare(1)")

# The private /dev: a tmpfs with the host's standard nodes bound in and the stand-ins.
SETUP = """
set -e
mount -t tmpfs -o mode=0755 devfake /dev
for n in null zero full random urandom tty; do touch /dev/$n; mount --bind "$HOSTDEV/$n" /dev/$n; done
mkdir /dev/pts /dev/shm
mknod -m 666 /dev/nvidiactl c $MAJOR 255
mknod -m 666 /dev/nvidia-uvm c $MAJOR 254
mknod -m 666 /dev/nvidia0 c $MAJOR 0
mknod -m 666 /dev/nvidia1 c $MAJOR 1
exec "$@"
"""


class FakeGPU:
    def __init__(self, warden, tmp, user=None):
        self.warden = warden
        self.tmp = tmp
        self.user = user
        self.procs = os.path.join(tmp, "procs")
        open(self.procs, "w").close()
        # The host's /dev as the namespace saw it before the tmpfs covered it.
        self.hostdev = os.path.join(tmp, "hostdev")
        os.mkdir(self.hostdev)
        self.env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LD_LIBRARY_PATH": FAKE,
            "FAKE_NVML_GPUS": f"{GPU0}:0,{GPU1}:1",
            "FAKE_NVML_PROCS": self.procs,
            "WARDEN_GPU_HELPER": os.path.join(BUILD, "warden-gpu"),
            "WARDEN_GPU_LOCK_DIR": os.path.join(tmp, "locks"),
            "HOSTDEV": self.hostdev,
            "MAJOR": str(_free_char_major()),
            "HOME": "/root",
        }
        self.audit = ["--audit-log", os.path.join(tmp, "audit.log"), "--audit-key",
                      os.path.join(tmp, "audit.key")]

    def argv(self, *args):
        # Bind the host's /dev aside first, so the standard nodes can be bound back.
        script = f"mount --bind /dev {shlex.quote(self.hostdev)}\n" + SETUP
        drop = []
        if self.user:  # rootless: root only makes the namespace
            drop = ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}",
                    "--clear-groups", "--"]
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                *drop, self.warden, *args]

    def run(self, *args, env=None, timeout=60):
        return subprocess.run(self.argv(*args), capture_output=True, text=True,
                              timeout=timeout, env={**self.env, **(env or {})})

    def popen(self, *args, env=None, **kw):
        return subprocess.Popen(self.argv(*args), env={**self.env, **(env or {})}, **kw)

    def sandbox(self, *args, env=None, timeout=60):
        return self.run("run", "-q", *self.audit, *args, env=env, timeout=timeout)

    def records(self, kind):
        with open(os.path.join(self.tmp, "audit.log")) as f:
            return [r for r in map(json.loads, f) if r["kind"] == kind]


@pytest.fixture
def fake(warden):
    if not os.path.exists(os.path.join(FAKE, "libnvidia-ml.so.1")):
        pytest.fail("the NVML test double is not built")
    d = tempfile.mkdtemp(prefix="warden-fakegpu-")
    yield FakeGPU(warden, d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fake_rootless(warden, bindir, test_user):
    """The same, run by the unprivileged test user: the helper and the doubles are copied
    where that user can read them."""
    d = tempfile.mkdtemp(prefix="warden-fakegpu-")
    for name in ("libnvidia-ml.so.1", "libcuda.so.1"):
        shutil.copy2(os.path.join(FAKE, name), d)
    shutil.copy2(os.path.join(BUILD, "warden-gpu"), bindir)
    os.chmod(os.path.join(bindir, "warden-gpu"), 0o755)
    f = FakeGPU(warden, d, test_user)
    f.env.update(LD_LIBRARY_PATH=d, WARDEN_GPU_HELPER=os.path.join(bindir, "warden-gpu"),
                 HOME=test_user.pw_dir)
    for root, dirs, files in os.walk(d):
        for n in [root] + [os.path.join(root, x) for x in dirs + files]:
            os.chown(n, test_user.pw_uid, test_user.pw_gid)
    os.chmod(d, 0o755)
    yield f
    shutil.rmtree(d, ignore_errors=True)


def test_rootless_grant(fake_rootless):
    """Without root: the nodes are there, the missing device cgroup is said, the grant is
    locked and scrubbed the same way."""
    f = fake_rootless
    r = f.run("run", *f.audit, "--gpu", "0", "--", "sh", "-c", "ls /dev | grep nvidia")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["nvidia-uvm", "nvidia0", "nvidiactl"]
    assert "no device cgroup without root" in r.stderr
    scrub = f.records("gpu.scrub")[0]
    assert scrub["ok"] is True
    assert os.stat(os.path.join(f.tmp, "locks", GPU0 + ".lock")).st_uid == f.user.pw_uid


def test_grant_nodes_audit_and_scrub(fake):
    r = fake.sandbox("--gpu", "0", "--", "sh", "-c", "ls /dev | grep nvidia")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["nvidia-uvm", "nvidia0", "nvidiactl"]
    grant = fake.records("device.grant")[0]
    assert grant["gpus"] == [{"uuid": GPU0, "index": 0}]
    assert sorted(d["path"] for d in grant["devices"]) == ["/dev/nvidia-uvm", "/dev/nvidia0",
                                                            "/dev/nvidiactl"]
    scrub = fake.records("gpu.scrub")[0]
    assert scrub["uuid"] == GPU0 and scrub["ok"] and scrub["verified"]
    assert scrub["bytes"] == 64 << 20 and scrub["samples"] > 0
    # by UUID, the other GPU
    r = fake.sandbox("--gpu", GPU1, "--", "sh", "-c", "ls /dev | grep nvidia")
    assert r.stdout.split() == ["nvidia-uvm", "nvidia1", "nvidiactl"], r.stderr


def test_gpu_that_does_not_exist(fake):
    r = fake.sandbox("--gpu", "5", "--", "true")
    assert r.returncode == 125
    assert f"gpu.devices: no GPU \"5\" on this host (GPUs: 0 {GPU0}, 1 {GPU1})" in r.stderr


def test_busy_while_another_sandbox_holds_it(fake):
    p = fake.popen("run", "-q", *fake.audit, "--gpu", "0", "--", "sleep", "3")
    try:
        deadline = time.monotonic() + 10
        lock = os.path.join(fake.tmp, "locks", GPU0 + ".lock")
        while time.monotonic() < deadline and not (os.path.exists(lock) and
                                                   open(lock).read().strip()):
            time.sleep(0.05)
        r = fake.sandbox("--gpu", "0", "--", "true")
        assert r.returncode == 125
        assert f"gpu: GPU {GPU0} is busy: in use by sandbox " in r.stderr
        r = fake.sandbox("--gpu", "1", "--", "true")  # the other GPU is free
        assert r.returncode == 0, r.stderr
    finally:
        assert p.wait(timeout=30) == 0


def test_failed_scrub_blocks_the_next_grant(fake):
    dirty = {"FAKE_CUDA_DIRTY": "1"}
    r = fake.sandbox("--gpu", "0", "--", "true", env=dirty)
    assert r.returncode == 0, r.stderr
    scrub = fake.records("gpu.scrub")[0]
    assert scrub["ok"] is False and scrub["verified"] is False
    r = fake.sandbox("--gpu", "0", "--", "true")
    assert r.returncode == 125
    assert f"GPU {GPU0} is not scrubbed: sandbox " in r.stderr
    r = fake.run("gpu", "scrub", "0", *fake.audit)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["verified"] is True
    assert fake.records("gpu.scrub")[-1]["by"] == "warden gpu scrub"
    r = fake.sandbox("--gpu", "0", "--", "true")
    assert r.returncode == 0, r.stderr


def _descendants(pid):
    out = []
    for child in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                text=True).stdout.split():
        out += [int(child)] + _descendants(int(child))
    return out


def _sandbox_pid(p):
    """The host pid of the sandboxed `sleep` (a descendant of the supervisor)."""
    for _ in range(400):
        for pid in _descendants(p.pid):
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "sleep":
                        return pid
            except OSError:
                pass
        time.sleep(0.025)
    raise AssertionError("the sandbox did not start")


def test_attribution_and_memory_guardrail(fake):
    """The watcher counts only the sandbox's processes (mapped through their cgroup): a
    foreign process's memory on the same GPU is not the sandbox's. Over gpu.memory, the
    guardrail kills the sandbox; its exited process, still listed, holds the scrub back
    until the driver (here: the test) lets go of it."""
    policy = os.path.join(fake.tmp, "gpu.yaml")
    with open(policy, "w") as f:
        f.write("gpu:\n  devices: [0]\n  memory: 1G\n")
    events = os.path.join(fake.tmp, "events.jsonl")
    p = fake.popen("run", *fake.audit, "--policy", policy, "--events", events, "--",
                   "sleep", "30", stderr=subprocess.PIPE, text=True)
    pid = _sandbox_pid(p)
    with open(fake.procs, "w") as f:
        f.write(f"{os.getpid()} {3 << 30}\n{pid} {512 << 20}\n")
    time.sleep(1.5)  # below the ceiling: sampled, not killed
    assert p.poll() is None
    with open(fake.procs, "w") as f:
        f.write(f"{os.getpid()} {3 << 30}\n{pid} {2 << 30}\n")
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{pid}"), "the guardrail did not kill the sandbox"
    time.sleep(0.5)
    with open(fake.procs, "w") as f:
        f.write(f"{os.getpid()} {3 << 30}\n")
    _, err = p.communicate(timeout=30)
    assert p.returncode == 137, err
    assert "guardrail gpu.memory killed the sandbox" in err
    with open(events) as f:
        samples = [e for e in map(json.loads, f) if e["kind"] == "gpu.sample"]
    assert samples, "no gpu.sample event"
    assert any(e["sandbox_pids"] == [pid] and e["sandbox_memory"] == 512 << 20
               for e in samples), samples
    fire = fake.records("guard.fire")[0]
    assert fire["rule"] == "gpu.memory" and fire["condition"] == "gpu_memory_above"
    assert str(2 << 30) in fire["evidence"]
    scrub = fake.records("gpu.scrub")[0]
    assert scrub["ok"] is True and scrub["foreign_processes"] == 1


def test_xid_event_and_record(fake):
    """A device error reported by NVML reaches the event stream and the audit log."""
    events = os.path.join(fake.tmp, "events.jsonl")
    r = fake.sandbox("--gpu", "0", "--events", events, "--", "sleep", "1.5",
                     env={"FAKE_NVML_XID": "79"})
    assert r.returncode == 0, r.stderr
    with open(events) as f:
        xids = [e for e in map(json.loads, f) if e["kind"] == "gpu.xid"]
    assert len(xids) == 1 and xids[0]["xid"] == 79
    assert [x["xid"] for x in fake.records("gpu.xid")] == [79]
    # without an event stream too
    r = fake.sandbox("--gpu", "0", "--", "sleep", "1.5", env={"FAKE_NVML_XID": "48"})
    assert r.returncode == 0, r.stderr
    assert [x["xid"] for x in fake.records("gpu.xid")] == [79, 48]


def test_leakcheck_runs_its_parts(fake):
    """The command's shape only (the double's numbers mean nothing): a control and two
    rounds, each with bytes written and read."""
    r = fake.run("gpu", "leakcheck", "1", env={"FAKE_CUDA_MEM": str(320 << 20)})
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["uuid"] == GPU1
    assert set(res) == {"uuid", "control", "scrub_off", "scrub_on"}
    for part in ("scrub_off", "scrub_on"):
        assert res[part]["written"] > 0 and res[part]["read"] > 0
