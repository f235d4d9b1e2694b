"""`warden supervise`: a long-lived sandbox that runs commands on request through its
supervisor's control socket (the protocol wardend and `warden mcp` use). Each command
enters through the sandbox's init and carries every restriction of the sandbox."""
import array
import json
import os
import signal
import socket
import subprocess
import time

import pytest


def request(path, obj, fds=()):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(20)
    s.connect(path)
    data = json.dumps(obj).encode()
    if fds:
        s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        s.send(data)
    return s


def once(path, obj):
    with request(path, obj) as s:
        return json.loads(s.recv(65536))


def exec_(path, argv, stdin=b"", **extra):
    """Runs argv; returns (start reply, stdout, stderr, end message)."""
    ir, iw = os.pipe()
    outr, outw = os.pipe()
    errr, errw = os.pipe()
    with request(path, {"op": "exec", "argv": argv, **extra}, [ir, outw, errw]) as s:
        for fd in (ir, outw, errw):
            os.close(fd)
        os.write(iw, stdin)
        os.close(iw)
        start = json.loads(s.recv(65536))
        with os.fdopen(outr, "rb") as o, os.fdopen(errr, "rb") as e:
            out, err = o.read(), e.read()
        end = json.loads(s.recv(65536))
    return start, out, err, end


class Service:
    def __init__(self, runner, warden, tmp, *opts, env=None):
        self.runner = runner
        self.audit = os.path.join(tmp, "audit.log")
        r = runner.run([warden, "supervise", "-q", "--audit-log", self.audit, "--audit-key",
                        os.path.join(tmp, "audit.key"), *opts], timeout=30, env=env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.count("\n") == 1, r.stdout
        self.info = json.loads(r.stdout)
        self.control = self.info["control"]
        self.pid = self.info["supervisor_pid"]

    def alive(self):
        try:
            os.kill(self.pid, 0)
            return True
        except ProcessLookupError:
            return False

    def wait_gone(self, timeout=10):
        end = time.monotonic() + timeout
        while self.alive() and time.monotonic() < end:
            time.sleep(0.05)
        return not self.alive()

    def destroy(self):
        if self.alive():
            try:
                once(self.control, {"op": "destroy"})
            except OSError:
                pass
            self.wait_gone()


@pytest.fixture
def service(runner, warden, shared_tmp):
    made = []

    def make(*opts):
        s = Service(runner, warden, shared_tmp, *opts)
        made.append(s)
        return s
    yield make
    for s in made:
        s.destroy()


def test_commands_share_one_sandbox(service):
    sv = service()
    info = once(sv.control, {"op": "info"})
    assert info["ok"] and info["service"] and info["sandbox"] == sv.info["sandbox"]
    assert os.path.exists(f"/proc/{info['init_pid']}/root")
    start, out, err, end = exec_(sv.control, ["sh", "-c", 'id -un; echo "$FOO"; pwd; cat; '
                                              'echo oops >&2; exit 3'],
                                 b"from stdin\n", env=["FOO=bar"], workdir="/tmp")
    assert start["ok"] and start["exec"] == 1 and start["pid"] > 1, start
    assert out == b"agent\nbar\n/tmp\nfrom stdin\n" and err == b"oops\n"
    assert end == {"exit": 3}
    # A background process outlives the command that started it, and files persist.
    exec_(sv.control, ["sh", "-c", "echo kept > /tmp/note; sleep 300 >/dev/null 2>&1 &"])
    _, out, _, end = exec_(sv.control, ["sh", "-c", "cat /tmp/note; pgrep -c sleep"])
    assert out == b"kept\n1\n" and end == {"exit": 0}


def test_root_is_handed_out_for_file_access(service):
    """The sandbox's root comes as a descriptor (what the file APIs resolve paths in):
    rootless, /proc/PID/root of the non-dumpable init is closed to the caller."""
    sv = service()
    exec_(sv.control, ["sh", "-c", "echo inside > /tmp/mark"])
    with request(sv.control, {"op": "root"}) as s:
        msg, fds, _, _ = socket.recv_fds(s, 65536, 1)
    assert json.loads(msg) == {"ok": True} and len(fds) == 1
    try:
        fd = os.open("tmp/mark", os.O_RDONLY, dir_fd=fds[0])
        assert os.read(fd, 100) == b"inside\n"
        os.close(fd)
    finally:
        os.close(fds[0])


def test_commands_carry_the_sandbox_restrictions(service):
    sv = service()
    _, out, _, _ = exec_(sv.control, ["sh", "-c", "grep -E '^(CapEff|NoNewPrivs|Seccomp):' "
                                      "/proc/self/status; cat /root/x 2>&1; "
                                      "ls /proc | grep -c '^[0-9]'"])
    text = out.decode()
    assert "CapEff:\t0000000000000000" in text and "NoNewPrivs:\t1" in text
    assert "Seccomp:\t2" in text
    assert "Permission denied" in text or "No such file" in text
    assert int(text.split()[-1]) <= 4  # init, sh, grep/ls, ...: not the host's processes


def test_exec_failures_and_bad_requests(service):
    sv = service()
    start, _, _, end = exec_(sv.control, ["no-such-command"])
    assert start["ok"] and end["exit"] == 127 and "No such file" in end["error"]
    _, _, _, end = exec_(sv.control, ["true"], workdir="/nonexistent")
    assert end == {"exit": 126,
                   "error": "working directory /nonexistent: No such file or directory"}
    assert once(sv.control, {"op": "exec", "argv": ["true"]})["error"].startswith(
        "exec: attach exactly 3 descriptors")
    for bad, message in [({"argv": []}, '"argv" must be a non-empty array'),
                         ({"argv": ["true"], "env": ["NOEQUALS"]}, '"env" must be'),
                         ({"argv": ["true"], "workdir": "rel"}, '"workdir" must be'),
                         ({"argv": [1]}, '"argv" must be')]:
        ir, iw = os.pipe()
        with request(sv.control, {"op": "exec", **bad}, [ir, ir, ir]) as s:
            reply = json.loads(s.recv(65536))
        os.close(ir)
        os.close(iw)
        assert not reply["ok"] and message in reply["error"], reply
    assert once(sv.control, {"op": "nope"}) == {"ok": False, "error": 'unknown op "nope"'}
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(20)
        s.connect(sv.control)
        s.send(b"not json")
        assert not json.loads(s.recv(65536))["ok"]


def test_signal_a_running_command(service):
    sv = service()
    ir, iw = os.pipe()
    outr, outw = os.pipe()
    s = request(sv.control, {"op": "exec", "argv": ["sleep", "300"]}, [ir, outw, outw])
    for fd in (ir, outw):
        os.close(fd)
    start = json.loads(s.recv(65536))
    assert once(sv.control, {"op": "signal", "exec": start["exec"], "signal": 9}) == {"ok": True}
    assert json.loads(s.recv(65536)) == {"exit": 128 + 9}
    s.close()
    os.close(iw)
    os.close(outr)
    reply = once(sv.control, {"op": "signal", "exec": start["exec"], "signal": 9})
    assert not reply["ok"] and "no running command" in reply["error"]


def test_paused_sandbox_refuses_commands(root_runner, warden, shared_tmp):
    sv = Service(root_runner, warden, shared_tmp)
    try:
        assert once(sv.control, {"op": "freeze"})["ok"]
        ir, iw = os.pipe()
        with request(sv.control, {"op": "exec", "argv": ["true"]}, [ir, iw, iw]) as s:
            assert json.loads(s.recv(65536))["error"] == "exec: the sandbox is paused"
        os.close(ir)
        os.close(iw)
        assert once(sv.control, {"op": "thaw"})["ok"]
        assert exec_(sv.control, ["true"])[3] == {"exit": 0}
    finally:
        sv.destroy()


def test_destroy_leaves_nothing(root_runner, warden, shared_tmp):
    sv = Service(root_runner, warden, shared_tmp)
    info = once(sv.control, {"op": "info"})
    cgroup = open(f"/proc/{info['init_pid']}/cgroup").read()
    exec_(sv.control, ["sh", "-c", "sleep 300 >/dev/null 2>&1 &"])
    # A running command's requester is told the sandbox ended.
    ir, iw = os.pipe()
    pending = request(sv.control, {"op": "exec", "argv": ["sleep", "300"]}, [ir, iw, iw])
    os.close(ir)
    os.close(iw)
    assert json.loads(pending.recv(65536))["ok"]
    assert once(sv.control, {"op": "destroy"}) == {"ok": True}
    assert json.loads(pending.recv(65536)) == {"exit": 137, "error": "the sandbox ended"}
    assert sv.wait_gone()
    assert not os.path.exists(sv.control)
    assert not os.path.exists(f"/proc/{info['init_pid']}")
    v2 = [line.split(":", 2)[2] for line in cgroup.splitlines() if line.startswith("0::")]
    if v2 and "/warden/" in v2[0]:
        assert not os.path.exists("/sys/fs/cgroup" + v2[0])
    with open(sv.audit) as f:
        kinds = [json.loads(line)["kind"] for line in f
                 if json.loads(line).get("sandbox") == info["sandbox"]]
    assert kinds[0] == "sandbox.create" and "sandbox.exec" in kinds
    assert "sandbox.exec.exit" in kinds and kinds[-1] == "sandbox.destroy"


def test_timeout_is_a_lifetime_and_sigterm_ends_it(root_runner, warden, shared_tmp):
    short = Service(root_runner, warden, shared_tmp, "--timeout", "1")
    assert short.wait_gone(15)
    sv = Service(root_runner, warden, shared_tmp)
    os.kill(sv.pid, signal.SIGTERM)
    assert sv.wait_gone()
    assert not os.path.exists(sv.control)


def test_supervise_errors(root_runner, warden):
    r = root_runner.run([warden, "supervise", "--", "true"])
    assert r.returncode == 125 and r.stdout == ""
    assert "takes no command" in r.stderr
    r = root_runner.run([warden, "supervise", "--memory", "lots"])
    assert r.returncode == 125 and r.stdout == "" and "--memory" in r.stderr
    r = root_runner.run([warden, "supervise", "--policy", "/nonexistent.yaml"])
    assert r.returncode == 125 and r.stdout == ""
    r = root_runner.run([warden, "supervise", "--tty"])
    assert r.returncode == 125 and "no terminal" in r.stderr


def test_the_sandbox_dies_with_its_supervisor(root_runner, warden, shared_tmp):
    sv = Service(root_runner, warden, shared_tmp)
    init = once(sv.control, {"op": "info"})["init_pid"]
    os.kill(sv.pid, signal.SIGKILL)
    end = time.monotonic() + 10
    while os.path.exists(f"/proc/{init}") and time.monotonic() < end:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{init}")
    subprocess.run(["rm", "-f", sv.control])
