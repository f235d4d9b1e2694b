"""The vm backend: `warden run --isolation vm` (docs/vm.md).

Real guests under QEMU (TCG on hosts without a KVM that can boot the guest: seconds per
boot), running real commands in a small root file system (busybox and the probe, from
--rootfs). Each sandbox is a fresh guest; tests that need a sandbox's state share one run.
Skipped, with the reason, only where QEMU or the guest kernel is missing."""
import fcntl
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import termios
import time

import pytest

pytestmark = pytest.mark.vm

KERNEL_DIR = os.environ.get("WARDEN_VM_DIR", "/var/cache/warden/vm")
BUSYBOX = shutil.which("busybox")
APPLETS = ["sh", "echo", "cat", "ls", "id", "pwd", "sleep", "true", "false", "mkdir", "rm",
           "kill", "head", "dd", "grep", "wc", "stat", "env", "touch", "poweroff", "sha256sum",
           "mount", "tty", "stty"]


def _missing():
    from conftest import vm_missing
    return vm_missing() or (None if BUSYBOX else "busybox is not installed")


if _missing():
    pytest.skip(_missing(), allow_module_level=True)


@pytest.fixture(scope="module")
def rootfs(probe):
    """A small root: busybox's applets and the probe, readable by everyone."""
    d = tempfile.mkdtemp(prefix="warden-vm-root-")
    os.chmod(d, 0o755)
    for sub in ("bin", "etc", "usr/bin", "tmp"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    shutil.copy2(BUSYBOX, os.path.join(d, "bin/busybox"))
    shutil.copy2(probe, os.path.join(d, "bin/probe"))
    for a in APPLETS:
        os.symlink("busybox", os.path.join(d, "bin", a))
    with open(os.path.join(d, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    subprocess.run(["chmod", "-R", "a+rX", d], check=True)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _parent(pid):
    """The parent pid and the parent's name, or (0, "") when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        with open(f"/proc/{ppid}/comm") as f:
            return ppid, f.read().strip()
    except (OSError, ValueError, IndexError):
        return 0, ""


def qemu_pids():
    """This run's QEMU processes: those below this process, and those whose supervisor is
    gone (the parent of their sandbox's init is not a warden). Guests that other runs on
    the same machine start are not this run's to count, nor to kill."""
    r = subprocess.run(["pgrep", "-f", "qemu-system-x86_64.*org.warden.agent"],
                       capture_output=True, text=True)
    mine = set()
    for pid in r.stdout.split():
        init, _ = _parent(pid)
        _, name = _parent(init)
        p = int(pid)
        while p > 1 and p != os.getpid():
            p = _parent(p)[0]
        if p == os.getpid() or (init and name != "warden"):
            mine.add(pid)
    return mine


@pytest.fixture(autouse=True)
def no_qemu_left():
    """Every test leaves no QEMU of its own behind."""
    before = qemu_pids()
    yield
    for _ in range(50):
        left = qemu_pids() - before
        if not left:
            return
        time.sleep(0.1)
    for pid in left:
        subprocess.run(["kill", "-9", pid])
    pytest.fail(f"QEMU processes left behind: {sorted(left)}")


def vm(runner, warden, rootfs, *cmd, opts=(), **kw):
    kw.setdefault("timeout", 180)
    return runner.run([warden, "run", "-q", "--isolation", "vm", "--rootfs", rootfs, *opts,
                       "--", *cmd], **kw)


# ---- exit statuses, stdio, environment ---------------------------------------------


def test_exit_statuses(root_runner, warden, rootfs):
    assert vm(root_runner, warden, rootfs, "sh", "-c", "exit 3").returncode == 3
    assert vm(root_runner, warden, rootfs, "sh", "-c", "kill -TERM $$").returncode == 143


def test_not_found_and_not_executable(root_runner, warden, rootfs):
    r = vm(root_runner, warden, rootfs, "no-such-command-here")
    assert r.returncode == 127
    assert r.stderr == "warden: exec: no-such-command-here: No such file or directory\n"
    r = vm(root_runner, warden, rootfs, "/etc/passwd")
    assert r.returncode == 126
    assert "Permission denied" in r.stderr


def test_stdio_env_workdir_identity(root_runner, warden, rootfs):
    r = vm(root_runner, warden, rootfs, "sh", "-c",
           'cat; echo "to stderr" >&2; echo "$FOO|$HOME"; pwd; id -u; id -g',
           opts=["-e", "FOO=bar baz", "-w", "/work/sub"], input="from stdin\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "from stdin\nbar baz|/home/agent\n/work/sub\n1000\n1000\n"
    assert r.stderr == "to stderr\n"


def test_large_output_and_input(root_runner, warden, rootfs):
    data = "x" * 999 + "\n"
    r = vm(root_runner, warden, rootfs, "sh", "-c", "cat; head -c 300000 /dev/zero | wc -c",
           input=data * 500)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data * 500 + "300000\n"


def test_stale_state_of_a_killed_supervisor_is_swept(root_runner, warden, rootfs):
    # What a supervisor killed with SIGKILL leaves: a state directory whose "live" file
    # nobody holds locked any more, with an agent socket nobody listens on. The next start
    # removes it; a directory whose file is locked (a live supervisor's) stays.
    os.makedirs("/run/warden/vm", exist_ok=True)
    stale, held = (tempfile.mkdtemp(dir="/run/warden/vm") for _ in range(2))
    s = socket.socket(socket.AF_UNIX)
    s.bind(os.path.join(stale, "agent.sock"))
    s.close()
    open(os.path.join(stale, "live"), "w").close()
    with open(os.path.join(held, "live"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            assert vm(root_runner, warden, rootfs, "true").returncode == 0
            assert not os.path.exists(stale)
            assert os.path.exists(held)
        finally:
            shutil.rmtree(held)


def test_concurrent_starts(root_runner, warden, rootfs):
    # Three guests starting at once, each sweeping the others' state directories as it
    # starts: none may take another's for dead (a probe of its agent socket once did, and
    # two of three failed).
    procs = [subprocess.Popen([warden, "run", "-q", "--isolation", "vm", "--rootfs", rootfs,
                               "--", "sh", "-c", f"echo {i}"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(3)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1] for o in outs]
    assert [o[0] for o in outs] == ["0\n", "1\n", "2\n"]



def test_rootless(rootless_runner, warden, rootfs):
    r = vm(rootless_runner, warden, rootfs, "sh", "-c", "echo hi; id -u; exit 7")
    assert r.returncode == 7, r.stderr
    assert r.stdout == "hi\n1000\n"


# ---- volumes ------------------------------------------------------------------------


def test_volumes_copy_in_out_with_owner(root_runner, warden, rootfs, test_user, shared_tmp):
    rw = os.path.join(shared_tmp, "rw")
    ro = os.path.join(shared_tmp, "ro")
    for d in (rw, ro):
        os.mkdir(d)
    for name, text in (("rw/keep.txt", "keep\n"), ("rw/gone.txt", "gone\n"),
                       ("ro/data.txt", "data\n")):
        with open(os.path.join(shared_tmp, name), "w") as f:
            f.write(text)
    subprocess.run(["chown", "-R", f"{test_user.pw_uid}:{test_user.pw_gid}", rw, ro],
                   check=True)
    r = vm(root_runner, warden, rootfs, "sh", "-c",
           "cat keep.txt /ro/data.txt; stat -c '%u' keep.txt; echo new > new.txt; "
           "rm gone.txt; mkdir d; echo deep > d/f; echo x > /ro/no.txt",
           opts=["-v", f"{rw}:/work", "-v", f"{ro}:/ro:ro", "-w", "/work"])
    assert r.returncode != 0  # the write to the read-only volume fails last
    assert r.stdout == "keep\ndata\n1000\n"
    assert "Read-only file system" in r.stderr
    assert sorted(os.listdir(rw)) == ["d", "keep.txt", "new.txt"]
    for p in ("new.txt", "d", "d/f"):
        st = os.stat(os.path.join(rw, p))
        assert (st.st_uid, st.st_gid) == (test_user.pw_uid, test_user.pw_gid), p
    with open(os.path.join(rw, "d/f")) as f:
        assert f.read() == "deep\n"
    assert os.listdir(ro) == ["data.txt"]


# ---- limits -------------------------------------------------------------------------


def test_timeout_is_124(root_runner, warden, rootfs):
    start = time.monotonic()
    r = vm(root_runner, warden, rootfs, "sleep", "60", opts=["--timeout", "1"])
    assert r.returncode == 124
    assert "timeout" in r.stderr
    assert time.monotonic() - start < 40


def test_memory_sizes_the_guest_and_bounds_it(root_runner, warden, rootfs):
    # The guest's RAM is --memory: its kernel sees about that much, and a command that
    # wants more is killed by the guest's OOM killer (SIGKILL: 137).
    r = vm(root_runner, warden, rootfs, "sh", "-c",
           "grep MemTotal /proc/meminfo; probe alloc 150", opts=["--memory", "192M"])
    kib = int(r.stdout.split()[1])
    assert 100 * 1024 < kib <= 192 * 1024, r.stdout
    assert r.returncode == 137, (r.returncode, r.stderr)


# ---- the boundary ------------------------------------------------------------------


def test_guest_sees_only_its_images(root_runner, warden, rootfs, shared_tmp):
    secret = os.path.join(shared_tmp, "host-secret")
    with open(secret, "w") as f:
        f.write("s3cret\n")
    os.chmod(secret, 0o644)
    # Outside, the file is there to read.
    assert root_runner.run(["cat", secret]).stdout == "s3cret\n"
    # Inside, even the guest's root finds only the image's files, and no file system
    # that reaches the host's (9p, virtiofs, fuse, nfs) is mounted.
    r = vm(root_runner, warden, rootfs, "sh", "-c",
           f"cat {secret}; echo ---; ls /; echo ---; cat /proc/mounts",
           opts=["--user", "root"])
    assert "s3cret" not in r.stdout
    assert f"can't open '{secret}': No such file or directory" in r.stderr
    _, top, mounts = r.stdout.split("---\n")
    assert set(top.split()) == {"bin", "dev", "etc", "lost+found", "proc", "root",
                                "sys", "tmp", "usr", "var"}, top
    types = {line.split()[2] for line in mounts.splitlines()}
    assert not types & {"9p", "virtiofs", "fuse", "nfs", "nfs4"}, types


def test_host_files_others_cannot_read_stay_out_of_the_image(root_runner, warden, rootfs,
                                                             shared_tmp):
    # An image of the host's /etc (plus busybox to look with): /etc/shadow, which root
    # reads on the host, is left out, so not even the guest's root reads it.
    assert root_runner.run(["head", "-c1", "/etc/shadow"]).returncode == 0
    policy = os.path.join(shared_tmp, "etc.yaml")
    with open(policy, "w") as f:
        f.write(f"isolation: vm\nfilesystem:\n  read_only: [/etc, {BUSYBOX}]\n")
    r = root_runner.run([warden, "run", "-q", "--policy", policy, "--user", "root", "--",
                         BUSYBOX, "sh", "-c", "cat /etc/hostname >/dev/null && "
                         f"{BUSYBOX} cat /etc/shadow"], timeout=300)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "can't open '/etc/shadow': No such file" in r.stderr


def test_guest_root_cannot_write_the_shared_root_image(root_runner, warden, rootfs, shared_tmp):
    # The root image is shared by every sandbox made from it. Writing over an image's
    # blocks works outside (on a copy), and inside not even the guest's root gets to:
    # QEMU exposes the disk read-only.
    cache = tempfile.mkdtemp(prefix="warden-vm-cache-", dir="/var/tmp")
    env = {"WARDEN_VM_CACHE": cache}
    # A root of its own, so that its image is built in this cache, not found in another.
    rootfs = shutil.copytree(rootfs, os.path.join(shared_tmp, "root"), symlinks=True)
    with open(os.path.join(rootfs, "etc/hostname"), "w") as f:
        f.write(f"{shared_tmp}\n")  # an entry no other root has: a key of its own
    try:
        assert vm(root_runner, warden, rootfs, "true", env=env).returncode == 0
        image = [os.path.join(cache, f) for f in os.listdir(cache) if f.startswith("root-")][0]
        copy = os.path.join(shared_tmp, "copy.ext4")
        shutil.copy(image, copy)
        out = root_runner.run(["dd", "if=/dev/zero", f"of={copy}", "bs=4096", "count=16",
                               "conv=notrunc"])
        assert out.returncode == 0, out.stderr
        before = subprocess.run(["sha256sum", image], capture_output=True, text=True).stdout
        r = vm(root_runner, warden, rootfs, "sh", "-c",
               "for d in /sys/block/vd*; do [ \"$(cat $d/serial)\" = root ] && "
               "dd if=/dev/zero of=/dev/${d##*/} bs=4096 count=16 conv=notrunc; done",
               opts=["--user", "root"], env=env)
        assert r.returncode != 0
        assert "Operation not permitted" in r.stderr or "Read-only" in r.stderr, r.stderr
        after = subprocess.run(["sha256sum", image], capture_output=True, text=True).stdout
        assert before == after
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def test_guest_poweroff_ends_only_the_sandbox(root_runner, warden, rootfs):
    r = vm(root_runner, warden, rootfs, "poweroff", "-f", opts=["--user", "root"])
    assert r.returncode == 125
    assert "the guest stopped before the command ended: the guest powered off" in r.stderr


def test_guest_panic_ends_the_sandbox(root_runner, warden, rootfs):
    start = time.monotonic()
    r = vm(root_runner, warden, rootfs, "sh", "-c", "echo c > /proc/sysrq-trigger; sleep 60",
           opts=["--user", "root"])
    assert r.returncode == 125
    assert "the guest stopped before the command ended" in r.stderr
    assert "Kernel panic" in r.stderr
    assert time.monotonic() - start < 40


def test_wedged_guest_times_out(root_runner, warden, rootfs):
    # A guest that does not come up within the boot timeout ends the start with a clear
    # error instead of waiting (here: a timeout shorter than any boot).
    start = time.monotonic()
    r = vm(root_runner, warden, rootfs, "true",
           env={"WARDEN_VM_BOOT_TIMEOUT": "0.2", "WARDEN_VM_SNAPSHOT": "0"})
    assert r.returncode == 125
    assert "the guest did not become ready within" in r.stderr
    assert time.monotonic() - start < 20


STATE_BASE = "/run/warden/vm"


def state_dirs():
    return set(os.listdir(STATE_BASE)) if os.path.isdir(STATE_BASE) else set()


def left_state_dirs(before):
    """State directories made since `before` that no live supervisor holds (its "live" file
    locked): what a run left behind. Other runs going on meanwhile hold theirs."""
    left = []
    for name in state_dirs() - before:
        try:
            with open(os.path.join(STATE_BASE, name, "live")) as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            left.append(name)
        except FileNotFoundError:
            if os.path.isdir(os.path.join(STATE_BASE, name)):
                left.append(name)  # a directory without its file is a start's, or left
        except BlockingIOError:
            pass
    return left


# Inside the guest, its root moves the agent (pid 1) into a cgroup of its own and freezes
# it: the guest's kernel and QEMU go on running, but nothing answers the host any more.
FREEZE_AGENT = ("mkdir /tmp/cg && mount -t cgroup2 none /tmp/cg && mkdir /tmp/cg/agent && "
                "echo 1 > /tmp/cg/agent/cgroup.procs && echo 1 > /tmp/cg/agent/cgroup.freeze")


def test_wedged_guest_is_ended_by_the_heartbeat(root_runner, warden, rootfs):
    # Not --timeout (100 s, far away) but the missing heartbeat ends the sandbox, with its
    # own message, and QEMU's sandbox is killed (no_qemu_left) and nothing is left.
    before = state_dirs()
    start = time.monotonic()
    r = vm(root_runner, warden, rootfs, "sh", "-c", FREEZE_AGENT + " && sleep 100",
           opts=["--user", "root", "--timeout", "100"],
           env={"WARDEN_VM_HEARTBEAT_TIMEOUT": "2"})
    assert r.returncode == 125, r.stderr
    assert r.stderr == "warden: the guest stopped answering (no heartbeat for 2 s)\n"
    assert time.monotonic() - start < 60
    assert left_state_dirs(before) == []
    # The same command with a frozen child cgroup that the agent is not in runs on: what
    # ended the first one was the agent's silence, not the freezing.
    r = vm(root_runner, warden, rootfs, "sh", "-c",
           FREEZE_AGENT.replace("echo 1 > /tmp/cg/agent/cgroup.procs && ", "") + " && echo ok",
           opts=["--user", "root"], env={"WARDEN_VM_HEARTBEAT_TIMEOUT": "2"})
    assert (r.returncode, r.stdout) == (0, "ok\n"), r.stderr


def test_slow_reader_is_not_a_wedged_guest(root_runner, warden, rootfs):
    # A reader that takes its time holds the relay up, and then the agent (its port's
    # buffers full): neither is the guest's silence, and every byte arrives.
    p = subprocess.Popen([warden, "run", "-q", "--isolation", "vm", "--rootfs", rootfs, "--",
                          "head", "-c", "3000000", "/dev/zero"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=root_runner.env(
                             {"WARDEN_VM_HEARTBEAT_TIMEOUT": "1"}))
    try:
        first = p.stdout.read(1)
        time.sleep(5)
        rest = p.stdout.read()
        assert p.wait(timeout=60) == 0, p.stderr.read()
        assert len(first + rest) == 3000000
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()


def test_frozen_guest_is_not_taken_for_wedged(root_runner, warden, rootfs, shared_tmp):
    from test_supervise import Service, exec_, once
    svc = Service(root_runner, warden, shared_tmp, "--isolation", "vm", "--rootfs", rootfs,
                  env={"WARDEN_VM_HEARTBEAT_TIMEOUT": "1"})
    try:
        assert exec_(svc.control, ["true"])[3] == {"exit": 0}
        assert once(svc.control, {"op": "freeze"})["ok"]
        time.sleep(4)
        assert once(svc.control, {"op": "thaw"})["ok"]
        _, out, _, end = exec_(svc.control, ["echo", "thawed"])
        assert (out, end) == (b"thawed\n", {"exit": 0})
    finally:
        svc.destroy()
    assert not svc.alive()


# ---- a terminal ---------------------------------------------------------------------


class Terminal:
    """`warden run -t` in a new session whose controlling terminal is a fresh pty of
    rows x cols; read what the terminal shows, type into it, resize it."""

    def __init__(self, runner, argv, rows, cols):
        self.master, slave = os.openpty()
        self.resize(rows, cols)

        def take_terminal():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.p = subprocess.Popen(runner.prefix() + argv, stdin=slave, stdout=slave,
                                  stderr=slave, env=runner.env({"TERM": "xterm-test"}),
                                  preexec_fn=take_terminal)
        os.close(slave)
        self.out = b""

    def resize(self, rows, cols):
        # On the master: the kernel sends SIGWINCH to warden, the terminal's foreground.
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def until(self, text, timeout=180):
        end = time.monotonic() + timeout
        while text.encode() not in self.out:
            ready, _, _ = select.select([self.master], [], [], max(0, end - time.monotonic()))
            assert ready, f"no {text!r} on the terminal: {self.out!r}"
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: closed
                chunk = b""
            assert chunk, f"the terminal closed before {text!r}: {self.out!r}"
            self.out += chunk

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        os.close(self.master)


def test_tty_gives_the_command_a_terminal(root_runner, warden, rootfs):
    cmd = ("tty; test -t 0 && echo stdin-tty; echo TERM=$TERM; stty size; echo ready; read x; "
           "echo got=$x; while [ \"$(stty size)\" != '40 120' ]; do sleep 0.1; done; "
           "echo resized; sleep 100")
    t = Terminal(root_runner, [warden, "run", "-q", "-t", "--isolation", "vm", "--rootfs",
                               rootfs, "--", "sh", "-c", cmd], 33, 99)
    try:
        t.until("ready")
        out = t.out.decode().replace("\r\n", "\n")
        assert out.startswith("/dev/pts/0\nstdin-tty\nTERM=xterm-test\n33 99\n"), out
        # What is typed reaches the command through the guest's terminal (which echoes it).
        os.write(t.master, b"hello\n")
        t.until("got=hello")
        assert b"hello\r\ngot=hello" in t.out
        # A new size reaches it, as SIGWINCH reaches warden.
        t.resize(40, 120)
        t.until("resized")
        # ^C is the guest terminal's: SIGINT to the command's foreground.
        os.write(t.master, b"\x03")
        assert t.p.wait(timeout=60) == 130
    finally:
        t.close()


def test_refused_options(root_runner, warden, rootfs):
    r = vm(root_runner, warden, rootfs, "true", opts=["--network", "host"])
    assert r.returncode == 125
    assert "isolation vm: network mode host is not supported" in r.stderr
    r = vm(root_runner, warden, rootfs, "true", opts=["--memory", "64M"])
    assert r.returncode == 125
    assert r.stderr == ("warden: isolation vm: memory 64M is too little for a guest (at "
                        "least 96M: its kernel's own share is in it)\n")
    r = vm(root_runner, warden, rootfs, "true", opts=["--device", "/dev/null"])
    assert r.returncode == 125
    assert "isolation vm: devices and GPUs are not passed into the guest" in r.stderr
    r = root_runner.run([warden, "run", "--isolation", "kvm", "--", "true"])
    assert r.returncode == 125
    assert '--isolation: "kvm" is not ns or vm' in r.stderr


def test_policy_key(root_runner, warden, rootfs, shared_tmp):
    bad = os.path.join(shared_tmp, "bad.yaml")
    with open(bad, "w") as f:
        f.write("name: x\nisolation: firecracker\n")
    r = root_runner.run([warden, "run", "--policy", bad, "--", "true"])
    assert r.returncode == 125
    assert f"{bad}:2:12: isolation" in r.stderr and "ns or vm" in r.stderr
    good = os.path.join(shared_tmp, "good.yaml")
    with open(good, "w") as f:
        f.write("isolation: vm\n")
    r = root_runner.run([warden, "run", "-q", "--policy", good, "--rootfs", rootfs, "--",
                         "sh", "-c", "cat /proc/cmdline"], timeout=180)
    assert r.returncode == 0, r.stderr
    assert "warden.tmp=" in r.stdout  # a guest kernel's command line, not the host's


# ---- audit and telemetry ------------------------------------------------------------


def test_audit_and_events(root_runner, warden, rootfs, shared_tmp):
    log = os.path.join(shared_tmp, "audit.log")
    events = os.path.join(shared_tmp, "events.jsonl")
    r = vm(root_runner, warden, rootfs, "sh", "-c", "exit 4",
           opts=["--audit-log", log, "--audit-key", log + ".key", "--events", events])
    assert r.returncode == 4
    with open(log) as f:
        recs = [json.loads(line) for line in f]
    kinds = [x["kind"] for x in recs]
    assert kinds[0] == "sandbox.create" and "sandbox.exit" in kinds, kinds
    assert [x for x in recs if x["kind"] == "sandbox.exit"][0]["status"] == 4
    with open(events) as f:
        evs = [json.loads(line) for line in f]
    src = [e for e in evs if e["kind"] == "telemetry.sources"][0]
    assert src["bpf"] is False and src["cgroup"] is True
    assert evs[-1]["kind"] == "sandbox.end"


# ---- the agent's protocol, on a guest driven directly ------------------------------


def test_agent_rejects_malformed_frames(rootfs, tmp_path):
    """Boot the agent by hand and send it a frame of an unknown type: it answers with an
    ERROR frame naming the problem and powers the guest off."""
    build = os.environ.get("WARDEN_BUILD", os.path.join(os.path.dirname(__file__),
                                                        "../../build"))
    agent = os.path.join(build, "warden-guest")
    d = tmp_path
    shutil.copy(agent, d / "init")
    cpio = subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], cwd=d,
                          input=b"init\n", capture_output=True, check=True).stdout
    with open(os.path.join(KERNEL_DIR, "modules.cpio"), "rb") as f:
        (d / "initrd").write_bytes(cpio + f.read())
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", rootfs, str(d / "root.img"),
                    "64M"], check=True)
    lsock = socket.socket(socket.AF_UNIX)
    lsock.bind(str(d / "agent.sock"))
    lsock.listen(1)
    q = subprocess.Popen([
        "qemu-system-x86_64", "-M", "microvm", "-accel", "tcg", "-m", "256M",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-kernel", os.path.join(KERNEL_DIR, "vmlinux"), "-initrd", str(d / "initrd"),
        "-append", "console=ttyS0 quiet panic=-1 tsc_early_khz=2000000 lpj=4000000",
        "-serial", f"file:{d / 'console.log'}",
        "-drive", f"id=root,file={d / 'root.img'},format=raw,if=none,readonly=on",
        "-device", "virtio-blk-device,drive=root,serial=root",
        "-device", "virtio-serial-device,max_ports=2",
        "-chardev", f"socket,id=agent,path={d / 'agent.sock'}",
        "-device", "virtserialport,chardev=agent,name=org.warden.agent"])
    try:
        lsock.settimeout(30)
        conn, _ = lsock.accept()
        conn.settimeout(120)

        def frame():
            hdr = b""
            while len(hdr) < 12:
                hdr += conn.recv(12 - len(hdr))
            t, _, _, i, n = struct.unpack("<BBHII", hdr)
            body = b""
            while len(body) < n:
                body += conn.recv(n - len(body))
            return t, i, body

        assert frame() == (16, 0, struct.pack("<I", 1))  # READY, version 1
        conn.sendall(struct.pack("<BBHII", 99, 0, 0, 0, 0))  # no such type
        t, i, body = frame()
        assert (t, i) == (21, 0) and b"unknown frame type" in body
        assert q.wait(timeout=60) == 0  # powered off
        assert "unknown frame type" in (d / "console.log").read_text()
    finally:
        q.kill()
        q.wait()
        lsock.close()


# ---- snapshots ----------------------------------------------------------------------


def test_snapshot_restored_guests_are_fresh_and_reseeded(root_runner, warden, rootfs):
    # Not under /tmp, which QEMU's sandbox has a tmpfs of its own on.
    cache = tempfile.mkdtemp(prefix="warden-vm-cache-", dir="/var/tmp")
    env = {"WARDEN_VM_CACHE": cache}
    try:
        small = ["--memory", "256M"]  # restored without being asked (docs/vm.md)
        # A 1 GiB guest is not saved unless asked to.
        assert vm(root_runner, warden, rootfs, "true", env=env).returncode == 0
        assert not [f for f in os.listdir(cache) if f.startswith("snap-")]
        cmd = ("sh", "-c", "head -c 16 /dev/urandom | od -An -tx1; ls /tmp; touch /tmp/mark")
        first = vm(root_runner, warden, rootfs, *cmd, opts=small, env=env)
        assert first.returncode == 0, first.stderr
        snaps = [f for f in os.listdir(cache) if f.startswith("snap-")]
        assert len(snaps) == 1, os.listdir(cache)
        runs = [vm(root_runner, warden, rootfs, *cmd, opts=small, env=env) for _ in range(2)]
        for r in runs:
            assert r.returncode == 0, r.stderr
            # Nothing of an earlier sandbox is in a restored guest.
            assert r.stdout.count("\n") == 1, r.stdout
        # Two guests restored from one saved state would draw the same random numbers from
        # the same kernel state; the host's entropy and reseed make them differ.
        assert len({first.stdout, runs[0].stdout, runs[1].stdout}) == 3
        # A restore that fails removes the snapshot, and the next start boots cold again.
        with open(os.path.join(cache, snaps[0]), "r+b") as f:
            f.truncate(4096)
        r = vm(root_runner, warden, rootfs, "true", opts=small, env=env)
        assert r.returncode == 125 and "restoring the guest" in r.stderr
        assert not os.path.exists(os.path.join(cache, snaps[0]))
        assert vm(root_runner, warden, rootfs, "true", opts=small, env=env).returncode == 0
    finally:
        shutil.rmtree(cache, ignore_errors=True)


# ---- a service sandbox --------------------------------------------------------------


def test_service_sandbox_runs_commands(root_runner, warden, rootfs, shared_tmp):
    from test_supervise import Service, exec_, once
    svc = Service(root_runner, warden, shared_tmp, "--isolation", "vm", "--rootfs", rootfs)
    try:
        start, out, err, end = exec_(svc.control, ["sh", "-c", "cat; echo e >&2; exit 5"],
                                     stdin=b"in\n", env=["X=1"], workdir="/srv")
        assert start["ok"] is True, start
        assert (out, err, end["exit"]) == (b"in\n", b"e\n", 5)
        _, out, _, end = exec_(svc.control, ["sh", "-c", "echo $X $HOME; pwd"],
                               env=["X=2"], workdir="/srv")
        assert (out, end["exit"]) == (b"2 /home/agent\n/srv\n", 0)
        _, _, _, end = exec_(svc.control, ["no-such"])
        assert end["exit"] == 127
        assert once(svc.control, {"op": "info"})["ok"] is True
    finally:
        svc.destroy()
    assert not svc.alive()
