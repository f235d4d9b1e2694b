"""wardend: the HTTP API over a real unix socket, driving real sandboxes (as root, and
rootless for the files API).

A daemon runs on a temporary socket and state directory; requests are made with
http.client over the unix socket. Covered: create (preset, inline, invalid policies),
list with labels, exec (JSON, SSE, NDJSON, stdin, exit codes, timeout, kill, background
processes), files (up, down, list, stat, delete, mkdir, and planted-symlink escapes, each
shown to work outside first), pause/resume, TTL, pools, kill -9 and SIGTERM of the daemon
with re-adoption, clean-up after destroy, bearer tokens over TCP, and a 4xx JSON error for
each kind of malformed request.

WARDEND_WARDEN=PATH runs the sandboxes with another warden binary."""
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("WARDEN_BUILD", os.path.join(ROOT, "build"))
WARDEND = os.path.join(BUILD, "wardend")

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="wardend's tests start sandboxes as root")


@pytest.fixture(scope="module")
def warden_bin(warden, bindir):
    """warden (conftest's copy, or $WARDEND_WARDEN), with wardend copied next to it: the
    tests run what was built when they started, whatever is rebuilt meanwhile."""
    global WARDEND
    if not os.path.exists(WARDEND):
        pytest.fail(f"{WARDEND} is missing: run `make build` first")
    copy = os.path.join(bindir, "wardend")
    if not os.path.exists(copy):
        shutil.copy2(WARDEND, copy)
    WARDEND = copy
    path = os.environ.get("WARDEND_WARDEN", warden)
    r = subprocess.run([path, "help"], capture_output=True, text=True)
    if "supervise" not in r.stdout:
        pytest.skip("this warden has no `supervise` verb yet")
    return path


# ---- a client and a daemon ------------------------------------------------------------


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Reply:
    def __init__(self, r, data):
        self.status = r.status
        self.headers = {k.lower(): v for k, v in r.getheaders()}
        self.data = data

    def json(self):
        return json.loads(self.data)

    def error(self):
        """The error object, checked to have the contract's shape."""
        e = self.json()["error"]
        assert set(e) == {"code", "message"}, e
        assert e["code"] and e["message"]
        return e


class Client:
    """Requests to wardend: over its unix socket, or over TCP when tcp=(host, port)."""

    def __init__(self, socket_path=None, tcp=None):
        self.socket = socket_path
        self.tcp = tcp

    def connection(self, timeout=30):
        if self.tcp:
            host, port = self.tcp
            return http.client.HTTPConnection(host, port, timeout=timeout)
        return UnixConnection(self.socket, timeout)

    def request(self, method, path, body=None, headers=None, timeout=30):
        c = self.connection(timeout)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        rep = Reply(r, r.read())
        c.close()
        return rep

    def stream(self, path, body, accept, timeout=30):
        """POST and yield each streamed event as (type, data)."""
        c = self.connection(timeout)
        c.request("POST", path, body=json.dumps(body), headers={"Accept": accept})
        r = c.getresponse()
        assert r.status == 200, r.read()
        assert r.getheader("Content-Type") == accept
        if accept == "application/x-ndjson":
            for line in r:
                obj = json.loads(line)
                yield obj.pop("type"), obj
        else:
            kind = None
            for line in r:
                line = line.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    yield kind, json.loads(line[6:])
        c.close()


    def create(self, **body):
        r = self.request("POST", "/v1/sandboxes", body)
        assert r.status == 201, r.data
        return r.json()

    def exec(self, sid, cmd, **kw):
        r = self.request("POST", f"/v1/sandboxes/{sid}/exec", {"cmd": cmd, **kw})
        assert r.status == 200, r.data
        return r.json()

    def sh(self, sid, script, **kw):
        return self.exec(sid, ["sh", "-c", script], **kw)

    def delete(self, sid):
        r = self.request("DELETE", f"/v1/sandboxes/{sid}")
        assert r.status == 204, r.data


class Daemon(Client):
    """A wardend as root, or (runner: conftest's rootless Runner) as the unprivileged test
    user, with its socket, state and (rootless) control sockets in a directory of its
    own."""

    def __init__(self, warden, *args, runner=None):
        self.dir = tempfile.mkdtemp(prefix="wardend-test-")
        super().__init__(os.path.join(self.dir, "w.sock"))
        self.state = os.path.join(self.dir, "state")
        self.logpath = os.path.join(self.dir, "wardend.log")
        self.argv = [WARDEND, "--socket", self.socket, "--state-dir", self.state,
                     "--warden", warden, *args]
        self.env = None
        if runner:
            os.chown(self.dir, runner.uid, runner.user.pw_gid)
            # The supervisors' control sockets: $XDG_RUNTIME_DIR/warden/sandboxes.
            self.env = runner.env({"XDG_RUNTIME_DIR": os.path.join(self.dir, "run")})
            self.argv = runner.prefix() + self.argv
        self.proc = None

    def start(self, wait=True):
        log = open(self.logpath, "a")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=log, env=self.env)
        log.close()
        deadline = time.time() + 15
        while wait and time.time() < deadline:
            assert self.proc.poll() is None, self.log()
            try:
                if self.request("GET", "/healthz").status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        if wait:
            raise AssertionError("wardend did not answer:\n" + self.log())
        return self

    def log(self):
        with open(self.logpath) as f:
            return f.read()

    def rows(self, sql="SELECT id, control, pooled, destroyed FROM sandboxes"):
        db = sqlite3.connect(os.path.join(self.state, "wardend.db"))
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()

    def control(self, sid):
        """The control socket of one of its sandboxes, from its state."""
        return dict(self.rows("SELECT id, control FROM sandboxes"))[sid]

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=15)

    def close(self):
        """Stop the daemon and destroy every sandbox its state knows."""
        if self.proc and self.proc.poll() is None:
            self.terminate()
        if os.path.exists(os.path.join(self.state, "wardend.db")):
            for _, control, _, _ in self.rows():
                control_request(control, {"op": "destroy"})
        subprocess.run(["rm", "-rf", self.dir])


def control_request(path, obj):
    """A request to a supervisor's control socket (the contract wardend uses)."""
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.settimeout(5)
        s.connect(path)
        s.send(json.dumps(obj).encode())
        r = json.loads(s.recv(65536))
        s.close()
        return r
    except OSError:
        return None


def control_path(sid):
    return f"/run/warden/sandboxes/{sid}.sock"


def info(sid):
    r = control_request(control_path(sid), {"op": "info"})
    assert r and r["ok"], r
    return r


def alive(pid):
    """A live process (not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cgroups_of(sid):
    found = []
    for top in ("/sys/fs/cgroup",):
        for dirpath, dirnames, _ in os.walk(top):
            if os.path.basename(dirpath) == sid:
                found.append(dirpath)
                dirnames[:] = []
    return found


def wait_for(cond, timeout=10, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


@pytest.fixture(scope="module")
def daemon(warden_bin):
    d = Daemon(warden_bin, "--pool", "default=1", "--max-ttl", "7200")
    try:
        yield d.start()
    finally:
        d.close()


@pytest.fixture
def sandbox(daemon):
    sb = daemon.create(env={"WARDEN_TEST": "1"})  # env: a fresh one, not the pool's
    yield sb["id"]
    daemon.request("DELETE", f"/v1/sandboxes/{sb['id']}")


# ---- create, get, list --------------------------------------------------------------


def test_healthz_and_metrics(daemon, sandbox):
    assert daemon.request("GET", "/healthz").json() == {"ok": True}
    m = daemon.request("GET", "/metrics")
    assert m.status == 200 and m.headers["content-type"].startswith("text/plain")
    text = m.data.decode()
    assert "wardend_sandboxes " in text
    assert f'warden_sandbox_memory_bytes{{sandbox="{sandbox}",policy="default"}}' in text


def test_create_presets_labels_and_list(daemon):
    a = daemon.create(labels={"team": "red", "job": "1"}, ttl=600)
    b = daemon.create(policy="strict", labels={"team": "blue"})
    try:
        assert a["policy"] == "default" and b["policy"] == "strict"
        assert a["state"] == "running" and a["labels"] == {"team": "red", "job": "1"}
        assert a["created_at"].endswith("Z") and a["expires_at"] > a["created_at"]
        got = daemon.request("GET", f"/v1/sandboxes/{a['id']}").json()
        assert got == a
        ids = [s["id"] for s in daemon.request("GET", "/v1/sandboxes").json()["sandboxes"]]
        assert a["id"] in ids and b["id"] in ids
        red = daemon.request("GET", "/v1/sandboxes?label=team=red").json()["sandboxes"]
        assert [s["id"] for s in red] == [a["id"]]
        both = daemon.request("GET", "/v1/sandboxes?label=team=red&label=job=1").json()
        assert [s["id"] for s in both["sandboxes"]] == [a["id"]]
        none = daemon.request("GET", "/v1/sandboxes?label=team=green").json()
        assert none == {"sandboxes": []}
        # strict's memory limit is what the sandbox gets.
        limits = [open(os.path.join(p, f)).read().strip() for p in cgroups_of(b["id"])
                  for f in ("memory.max", "memory.limit_in_bytes")
                  if os.path.exists(os.path.join(p, f))]
        assert limits and set(limits) == {str(256 << 20)}
    finally:
        daemon.delete(a["id"])
        daemon.delete(b["id"])


def test_create_inline_policy(daemon):
    yaml = "version: 1\nname: tiny\nextends: default\nlimits:\n  pids: 64\n"
    sb = daemon.create(policy_yaml=yaml)
    try:
        assert sb["policy"] == "tiny" and sb["from_pool"] is False
        r = daemon.sh(sb["id"], "echo ok")
        assert r["stdout"] == "ok\n"
        # The inline policy's temporary file is gone once the supervisor has read it.
        assert os.listdir(os.path.join(daemon.state, "policies")) == []
        text = daemon.rows(f"SELECT policy_text FROM sandboxes WHERE id = '{sb['id']}'")
        assert text == [(yaml,)]
    finally:
        daemon.delete(sb["id"])


def test_create_bad_policies(daemon):
    r = daemon.request("POST", "/v1/sandboxes", {"policy_yaml": "limits:\n  memory: lots\n"})
    assert r.status == 400
    e = r.error()
    assert e["code"] == "invalid_policy" and "memory" in e["message"]
    assert "policy_yaml:2" in e["message"]  # file:line of the problem
    r = daemon.request("POST", "/v1/sandboxes", {"policy_yaml": "nonsense_key: 1\n"})
    assert r.status == 400 and "nonsense_key" in r.error()["message"]
    r = daemon.request("POST", "/v1/sandboxes", {"policy_yaml": "filesystem:\n  volumes: [/:/host]\n"})
    assert r.status == 403 and r.error()["code"] == "forbidden_policy"
    assert "filesystem.volumes" in r.error()["message"]
    r = daemon.request("POST", "/v1/sandboxes",
                       {"policy_yaml": "filesystem:\n  read_only: [/root]\n"})
    assert r.status == 403 and "/root" in r.error()["message"]
    r = daemon.request("POST", "/v1/sandboxes", {"policy_yaml": "network:\n  mode: host\n"})
    assert r.status == 403 and "network.mode" in r.error()["message"]
    r = daemon.request("POST", "/v1/sandboxes",
                       {"policy_yaml": "process:\n  env_pass: [PATH]\n"})
    assert r.status == 403 and "env_pass" in r.error()["message"]
    r = daemon.request("POST", "/v1/sandboxes", {"policy": "no-such-policy"})
    assert r.status == 400 and r.error()["code"] == "unknown_policy"
    assert "no-such-policy" in r.error()["message"]


# ---- exec ---------------------------------------------------------------------------


def test_exec_collected(daemon, sandbox):
    r = daemon.sh(sandbox, "echo out; echo err >&2; exit 3")
    assert r["exit_code"] == 3 and r["timed_out"] is False
    assert r["stdout"] == "out\n" and r["stderr"] == "err\n"
    assert isinstance(r["exec_id"], int)
    assert daemon.exec(sandbox, ["true"])["exit_code"] == 0
    assert daemon.sh(sandbox, "kill -TERM $$")["exit_code"] == 128 + 15
    r = daemon.exec(sandbox, ["no-such-command"])
    assert r["exit_code"] == 127
    # stdin, env (on top of the sandbox's, which has the create's), workdir, identity.
    r = daemon.exec(sandbox, ["sh", "-c", "cat; echo $A $WARDEN_TEST; pwd; id -u"],
                    stdin="from stdin\n", env={"A": "b"}, workdir="/tmp")
    assert r["stdout"] == "from stdin\nb 1\n/tmp\n1000\n"
    # Bytes that are not UTF-8 are replaced, not lost.
    r = daemon.sh(sandbox, r"printf 'a\377b'")
    assert r["stdout"] == "a\ufffdb"


def test_exec_sse_and_ndjson(daemon, sandbox):
    script = "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three; exit 4"
    for accept in ("text/event-stream", "application/x-ndjson"):
        events = list(daemon.stream(f"/v1/sandboxes/{sandbox}/exec",
                                    {"cmd": ["sh", "-c", script]}, accept))
        kinds = [k for k, _ in events]
        assert kinds[0] == "started" and kinds[-1] == "exit", events
        assert events[0][1]["exec_id"] > 0 and events[0][1]["pid"] > 1
        out = "".join(d["data"] for k, d in events if k == "stdout")
        err = "".join(d["data"] for k, d in events if k == "stderr")
        assert out == "one\nthree\n" and err == "two\n"
        assert events[-1][1] == {"exit_code": 4, "timed_out": False}


def test_exec_timeout(daemon, sandbox):
    t = time.time()
    r = daemon.exec(sandbox, ["sleep", "30"], timeout=0.5)
    assert r["timed_out"] is True and r["exit_code"] == 128 + 9
    assert time.time() - t < 10


def test_exec_kill(daemon, sandbox):
    events = daemon.stream(f"/v1/sandboxes/{sandbox}/exec", {"cmd": ["sleep", "60"]},
                           "application/x-ndjson")
    kind, started = next(events)
    assert kind == "started"
    r = daemon.request("POST", f"/v1/sandboxes/{sandbox}/exec/{started['exec_id']}/kill",
                       {"signal": 15})
    assert r.status == 204, r.data
    rest = list(events)
    assert rest[-1] == ("exit", {"exit_code": 128 + 15, "timed_out": False})
    # The exec has ended: killing it again is a conflict.
    r = daemon.request("POST", f"/v1/sandboxes/{sandbox}/exec/{started['exec_id']}/kill")
    assert r.status == 409 and r.error()["code"] == "ended"
    logs = daemon.request("GET", f"/v1/sandboxes/{sandbox}/logs").json()["execs"]
    mine = [x for x in logs if x["exec_id"] == started["exec_id"]]
    assert mine[0]["cmd"] == ["sleep", "60"] and mine[0]["exit_code"] == 143
    assert mine[0]["started_at"] <= mine[0]["ended_at"]


def test_background_process_survives_to_the_next_exec(daemon, sandbox):
    t = time.time()
    r = daemon.sh(sandbox, "sleep 300 > /dev/null 2>&1 & echo $!")
    pid = int(r["stdout"])
    # The answer did not wait for the background process.
    assert time.time() - t < 5
    r = daemon.sh(sandbox, f"kill -0 {pid} && echo alive")
    assert r["stdout"] == "alive\n"
    # Nor does one that keeps the pipes open hold the answer.
    t = time.time()
    r = daemon.sh(sandbox, "sleep 300 & echo started")
    assert r["stdout"] == "started\n" and time.time() - t < 5


# ---- files --------------------------------------------------------------------------


def files(sid, sub="", **q):
    from urllib.parse import urlencode
    return f"/v1/sandboxes/{sid}/files{sub}?" + urlencode(q)


def test_files_roundtrip(daemon, sandbox):
    blob = os.urandom(200000)
    r = daemon.request("PUT", files(sandbox, path="/tmp/blob.bin", mode="0600"), blob)
    assert r.status == 201, r.data
    fi = r.json()
    assert fi["path"] == "/tmp/blob.bin" and fi["name"] == "blob.bin"
    assert fi["type"] == "file" and fi["size"] == len(blob) and fi["mode"] == "0600"
    r = daemon.request("GET", files(sandbox, path="/tmp/blob.bin"))
    assert r.status == 200 and r.data == blob
    assert r.headers["content-type"] == "application/octet-stream"
    # Inside, the file is the sandbox user's.
    r = daemon.exec(sandbox, ["stat", "-c", "%u:%g %a %s", "/tmp/blob.bin"])
    assert r["stdout"] == f"1000:1000 600 {len(blob)}\n"
    # And a file the sandbox wrote comes out.
    daemon.sh(sandbox, "printf made-inside > /tmp/inside.txt")
    assert daemon.request("GET", files(sandbox, path="/tmp/inside.txt")).data == b"made-inside"

    r = daemon.request("POST", files(sandbox, "/mkdir", path="/tmp/a/b/c", parents="true"))
    assert r.status == 201 and r.json()["type"] == "dir" and r.json()["mode"] == "0755"
    r = daemon.request("POST", files(sandbox, "/mkdir", path="/tmp/a"))
    assert r.status == 409 and r.error()["code"] == "exists"
    daemon.request("PUT", files(sandbox, path="/tmp/a/b/c/f.txt"), b"x")
    st = daemon.request("GET", files(sandbox, "/stat", path="/tmp/a/b")).json()
    assert st["type"] == "dir" and st["name"] == "b"
    lst = daemon.request("GET", files(sandbox, "/list", path="/tmp")).json()
    names = {e["name"]: e for e in lst["entries"]}
    assert {"blob.bin", "inside.txt", "a"} <= set(names)
    assert names["a"]["type"] == "dir" and names["a"]["path"] == "/tmp/a"
    assert lst["truncated"] is False

    r = daemon.request("DELETE", files(sandbox, path="/tmp/a"))
    assert r.status == 409 and r.error()["code"] == "not_empty"
    assert daemon.request("DELETE", files(sandbox, path="/tmp/a", recursive="true")).status == 204
    assert daemon.request("DELETE", files(sandbox, path="/tmp/blob.bin")).status == 204
    r = daemon.request("GET", files(sandbox, path="/tmp/blob.bin"))
    assert r.status == 404 and "/tmp/blob.bin" in r.error()["message"]
    assert daemon.sh(sandbox, "ls /tmp")["stdout"] == "inside.txt\n"

    # Errors name the path; read-only places refuse.
    r = daemon.request("PUT", files(sandbox, path="/usr/bin/evil"), b"x")
    assert r.status == 403 and "/usr/bin/evil" in r.error()["message"]
    r = daemon.request("GET", files(sandbox, path="/tmp"))
    assert r.status == 409 and r.error()["code"] == "is_a_directory"
    r = daemon.request("GET", files(sandbox, "/list", path="/tmp/inside.txt"))
    assert r.status == 400 and r.error()["code"] == "not_a_directory"
    # Kernel interfaces are not files.
    r = daemon.request("GET", files(sandbox, path="/proc/1/environ"))
    assert r.status == 403


@pytest.fixture
def host_secret():
    d = tempfile.mkdtemp(prefix="warden-escape-", dir="/var/tmp")
    path = os.path.join(d, "secret")
    with open(path, "w") as f:
        f.write("host secret\n")
    yield path
    subprocess.run(["rm", "-rf", d])


def test_files_planted_absolute_symlink_stays_inside(daemon, sandbox, host_secret):
    root = f"/proc/{info(sandbox)['init_pid']}/root"
    daemon.sh(sandbox, f"ln -s {host_secret} /tmp/x; ln -s /etc/shadow /tmp/sh")
    # Outside first: the host's own path walk, joining the sandbox's root and the path,
    # follows the absolute link to the host's file.
    with open(root + "/tmp/x") as f:
        assert f.read() == "host secret\n"
    with open(root + "/tmp/sh") as f:
        assert f.read() == open("/etc/shadow").read()
    # Through the API the link resolves inside the sandbox: there is no such file there,
    # and the host's /etc/shadow (bound in read-only) is not the sandbox user's to read.
    r = daemon.request("GET", files(sandbox, path="/tmp/x"))
    assert r.status == 404 and b"host secret" not in r.data
    r = daemon.request("GET", files(sandbox, path="/tmp/sh"))
    assert r.status == 403 and b"root:" not in r.data
    # Writing through a planted link is refused; the host file is untouched.
    r = daemon.request("PUT", files(sandbox, path="/tmp/x"), b"pwned")
    assert r.status == 409 and r.error()["code"] == "symlink"
    assert open(host_secret).read() == "host secret\n"
    # Deleting removes the link, never its target.
    assert daemon.request("DELETE", files(sandbox, path="/tmp/x")).status == 204
    assert open(host_secret).read() == "host secret\n"
    st = daemon.request("GET", files(sandbox, "/stat", path="/tmp/sh")).json()
    assert st["type"] == "symlink"


def test_files_planted_dotdot_symlink_stays_inside(daemon, sandbox, host_secret):
    root = f"/proc/{info(sandbox)['init_pid']}/root"
    daemon.sh(sandbox, "ln -s ../../../../../.. /tmp/up")
    # Outside first: resolving the link by joining strings (what a daemon that builds
    # host paths does) climbs out of the sandbox's root to the host's.
    target = os.readlink(root + "/tmp/up")
    naive = os.path.normpath(os.path.join(root, "tmp", target, host_secret.lstrip("/")))
    assert naive == host_secret
    with open(naive) as f:
        assert f.read() == "host secret\n"
    # Through the API ".." stops at the sandbox's "/".
    r = daemon.request("GET", files(sandbox, path="/tmp/up" + host_secret))
    assert r.status == 404
    r = daemon.request("DELETE", files(sandbox, path="/tmp/up" + host_secret))
    assert r.status == 404 and os.path.exists(host_secret)
    r = daemon.request("PUT", files(sandbox, path="/tmp/up/tmp/planted"), b"inside")
    assert r.status == 201
    assert daemon.exec(sandbox, ["cat", "/tmp/planted"])["stdout"] == "inside"
    assert not os.path.exists("/tmp/planted")
    r = daemon.request("GET", files(sandbox, "/list", path="/tmp/up"))
    names = {e["name"] for e in r.json()["entries"]}
    inside = set(daemon.exec(sandbox, ["ls", "-A", "/"])["stdout"].split())
    assert names == inside and names != set(os.listdir("/"))  # the sandbox's "/"


def test_files_bad_paths(daemon, sandbox):
    base = f"/v1/sandboxes/{sandbox}/files"
    for q, field in [("", "path"), ("?path=tmp/x", "path"), ("?path=/tmp/%00x", "NUL"),
                     ("?path=/" + "a" * 5000, "path"), ("?path=/tmp/x&bogus=1", "bogus"),
                     ("?path=/tmp/x&path=/tmp/y", "path"), ("?path=%zz", "escape")]:
        r = daemon.request("GET", base + q)
        assert r.status == 400, (q, r.data)
        assert field in r.error()["message"], (q, r.error())
    r = daemon.request("PUT", base + "?path=/tmp/f&mode=4755", b"x")
    assert r.status == 400 and "mode" in r.error()["message"]
    r = daemon.request("DELETE", base + "?path=/")
    assert r.status == 400
    r = daemon.request("DELETE", base + "?path=/tmp/f&recursive=maybe")
    assert r.status == 400 and "recursive" in r.error()["message"]


@pytest.fixture
def rootless_daemon(warden_bin, rootless_runner):
    d = Daemon(warden_bin, runner=rootless_runner)
    try:
        yield d.start()
    finally:
        d.close()


def test_rootless_files(rootless_daemon, rootless_runner, host_secret):
    """wardend run by an unprivileged user serves the files API. The kernel refuses that
    user /proc/INIT/root of the sandbox's init (not dumpable): the root comes from the
    supervisor. The sandbox's user is that user's own uid, mapped, so no identity is
    switched, and the sandbox's files are its files; re-adopted after a restart, the
    sandbox's root is asked for again."""
    d = rootless_daemon
    sid = d.create()["id"]
    init = control_request(d.control(sid), {"op": "info"})["init_pid"]
    # Outside first: the way in that root has is closed to the daemon's user.
    r = rootless_runner.run(["ls", f"/proc/{init}/root/"])
    assert r.returncode != 0 and "Permission denied" in r.stderr, r

    blob = os.urandom(100000)
    r = d.request("PUT", files(sid, path="/tmp/blob.bin", mode="0600"), blob)
    assert r.status == 201, r.data
    assert r.json()["size"] == len(blob) and r.json()["mode"] == "0600"
    assert d.request("GET", files(sid, path="/tmp/blob.bin")).data == blob
    r = d.exec(sid, ["stat", "-c", "%u:%g %a %s", "/tmp/blob.bin"])
    assert r["stdout"] == f"1000:1000 600 {len(blob)}\n"
    d.sh(sid, "printf made-inside > /tmp/inside.txt; ln -s ../../../.. /tmp/up; "
              f"ln -s {host_secret} /tmp/x")
    assert d.request("GET", files(sid, path="/tmp/inside.txt")).data == b"made-inside"
    r = d.request("POST", files(sid, "/mkdir", path="/tmp/a/b", parents="true"))
    assert r.status == 201 and r.json()["type"] == "dir"
    st = d.request("GET", files(sid, "/stat", path="/tmp/a")).json()
    assert st["type"] == "dir" and st["name"] == "a"
    names = {e["name"] for e in d.request("GET", files(sid, "/list", path="/tmp")).json()
             ["entries"]}
    assert {"blob.bin", "inside.txt", "a", "up", "x"} <= names
    assert d.request("DELETE", files(sid, path="/tmp/a", recursive="true")).status == 204
    assert d.sh(sid, "test -e /tmp/a || echo gone")["stdout"] == "gone\n"
    # Planted links resolve inside; read-only and unreadable places refuse.
    r = d.request("GET", files(sid, path="/tmp/x"))
    assert r.status == 404 and b"host secret" not in r.data
    r = d.request("GET", files(sid, path="/tmp/up" + host_secret))
    assert r.status == 404
    r = d.request("PUT", files(sid, path="/usr/bin/evil"), b"x")
    assert r.status == 403, r.data
    assert d.request("GET", files(sid, path="/etc/shadow")).status == 403

    # killed and started again: the sandbox is re-adopted and its root asked for again.
    d.kill9()
    d.start()
    assert d.request("GET", files(sid, path="/tmp/inside.txt")).data == b"made-inside"
    r = d.request("PUT", files(sid, path="/tmp/after"), b"after restart")
    assert r.status == 201, r.data
    assert d.exec(sid, ["cat", "/tmp/after"])["stdout"] == "after restart"
    d.delete(sid)
    r = d.request("GET", files(sid, path="/tmp/after"))
    assert r.status == 404


# ---- pause, resume, stats, events ---------------------------------------------------


def test_pause_resume(daemon, sandbox):
    daemon.sh(sandbox, "(i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.02; done) "
                       ">/dev/null 2>&1 &")

    def counter():
        r = daemon.request("GET", files(sandbox, path="/tmp/n"))
        return int(r.data or b"0") if r.status == 200 else 0  # not written yet

    assert wait_for(lambda: counter() > 3)
    r = daemon.request("POST", f"/v1/sandboxes/{sandbox}/pause")
    assert r.status == 200 and r.json()["state"] == "paused"
    assert daemon.request("GET", f"/v1/sandboxes/{sandbox}").json()["state"] == "paused"
    time.sleep(0.1)
    a = counter()
    time.sleep(0.5)
    assert counter() == a  # no progress while paused
    r = daemon.request("POST", f"/v1/sandboxes/{sandbox}/exec", {"cmd": ["true"]})
    assert r.status == 409 and r.error()["code"] == "paused"
    assert daemon.request("GET", f"/v1/sandboxes/{sandbox}/stats").json()["frozen"] is True
    r = daemon.request("POST", f"/v1/sandboxes/{sandbox}/resume")
    assert r.status == 200 and r.json()["state"] == "running"
    assert wait_for(lambda: counter() > a + 3)


def test_stats_and_events(daemon, sandbox):
    s = daemon.request("GET", f"/v1/sandboxes/{sandbox}/stats").json()
    assert s["sandbox"] == sandbox and s["pids"] >= 1 and "memory_current" in s
    daemon.exec(sandbox, ["true"])
    c = daemon.connection(timeout=10)
    c.request("GET", f"/v1/sandboxes/{sandbox}/events")
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Content-Type") == "text/event-stream"
    kinds = []
    for line in r:
        if line.startswith(b"data: "):
            ev = json.loads(line[6:])
            assert ev["sandbox"] == sandbox
            kinds.append(ev["kind"])
            if "sandbox.start" in kinds and len(kinds) >= 2:
                break
    c.close()
    assert kinds[0] == "sandbox.start"


def test_events_stream_ends_with_the_sandbox(daemon):
    sid = daemon.create(env={"E": "1"})["id"]
    c = daemon.connection(timeout=20)
    c.request("GET", f"/v1/sandboxes/{sid}/events")
    r = c.getresponse()
    threading.Timer(0.5, lambda: daemon.request("DELETE", f"/v1/sandboxes/{sid}")).start()
    body = r.read()  # returns: the stream ends when the sandbox does
    assert b"sandbox.start" in body
    c.close()


# ---- lifetime: TTL, destroy, pools --------------------------------------------------


def test_ttl_expiry(daemon):
    sb = daemon.create(ttl=1, env={"T": "1"})
    sv = info(sb["id"])["supervisor_pid"]
    assert wait_for(lambda: daemon.request("GET", f"/v1/sandboxes/{sb['id']}").status == 404,
                    timeout=15)
    assert wait_for(lambda: not alive(sv))
    assert not os.path.exists(control_path(sb["id"]))
    assert daemon.rows(f"SELECT id FROM sandboxes WHERE id = '{sb['id']}'") == []


def mountinfo_lines():
    with open("/proc/self/mountinfo") as f:
        return len(f.readlines())


def netns_in_use():
    used = set()
    for p in os.listdir("/proc"):
        try:
            used.add(os.stat(f"/proc/{p}/ns/net").st_ino)
        except (OSError, ValueError):
            pass
    return used


def test_destroy_leaves_nothing(daemon):
    mounts = mountinfo_lines()
    sb = daemon.create(env={"D": "1"})
    sid = sb["id"]
    i = info(sid)
    daemon.sh(sid, "sleep 300 >/dev/null 2>&1 &")
    assert alive(i["supervisor_pid"]) and alive(i["init_pid"])
    assert os.path.exists(control_path(sid)) and cgroups_of(sid)
    netns = os.stat(f"/proc/{i['init_pid']}/ns/net").st_ino
    assert netns != os.stat("/proc/self/ns/net").st_ino
    events = os.path.join(daemon.state, "events", sid + ".jsonl")
    assert os.path.exists(events)
    daemon.delete(sid)  # answers once the supervisor has ended
    assert not alive(i["supervisor_pid"]) and not alive(i["init_pid"])
    assert not os.path.exists(control_path(sid))
    assert wait_for(lambda: cgroups_of(sid) == [], timeout=5)
    assert not os.path.exists(events)
    assert daemon.rows(f"SELECT id FROM sandboxes WHERE id = '{sid}'") == []
    assert daemon.rows(f"SELECT exec_id FROM execs WHERE sandbox = '{sid}'") == []
    assert mountinfo_lines() == mounts
    assert netns not in netns_in_use()  # no process left in its network namespace
    assert daemon.request("GET", f"/v1/sandboxes/{sid}").status == 404
    assert daemon.request("DELETE", f"/v1/sandboxes/{sid}").status == 404


def pool_rows(d):
    return d.rows("SELECT id FROM sandboxes WHERE pooled = 1 AND destroyed = 0")


def test_pool(warden_bin):
    d = Daemon(warden_bin, "--pool", "default=2", "--pool", "strict=1")
    try:
        d.start()
        assert wait_for(lambda: len(pool_rows(d)) == 3)
        times = []
        for _ in range(3):
            t = time.time()
            r = d.request("POST", "/v1/sandboxes", {"labels": {"p": "1"}})
            client_ms = (time.time() - t) * 1000
            assert r.status == 201 and r.json()["from_pool"] is True
            daemon_ms = float(r.headers["server-timing"].split("dur=")[1])
            times.append((daemon_ms, client_ms))
            assert wait_for(lambda: len(pool_rows(d)) == 3)
        print("\npooled create: daemon %.3f ms, client round trip %.3f ms (each: %s)" % (
            min(t[0] for t in times), min(t[1] for t in times), times))
        sid = r.json()["id"]
        assert d.sh(sid, "echo pooled")["stdout"] == "pooled\n"
        # With env it cannot come from the pool.
        r = d.request("POST", "/v1/sandboxes", {"env": {"A": "1"}})
        assert r.status == 201 and r.json()["from_pool"] is False
        fresh_ms = float(r.headers["server-timing"].split("dur=")[1])
        print("fresh create: daemon %.3f ms" % fresh_ms)
        assert d.create(policy="strict")["from_pool"] is True
        # Destroying what came from a pool leaves no slot behind: the pool is refilled to
        # its size, not beyond.
        listed = d.request("GET", "/v1/sandboxes").json()["sandboxes"]
        for s in listed:
            d.delete(s["id"])
        assert wait_for(lambda: len(pool_rows(d)) == 3)
        time.sleep(0.3)
        assert len(pool_rows(d)) == 3
        text = d.request("GET", "/metrics").data.decode()
        assert 'wardend_pool_ready{policy="default"} 2' in text
        assert 'wardend_pool_ready{policy="strict"} 1' in text
        assert "wardend_sandboxes 0" in text
    finally:
        d.close()


# ---- the daemon dies, the sandboxes do not -------------------------------------------


def test_kill9_and_restart_readopts(warden_bin):
    d = Daemon(warden_bin, "--pool", "default=1")
    try:
        d.start()
        assert wait_for(lambda: len(pool_rows(d)) == 1)
        # c comes from the pool: its TTL is wardend's alone (no supervisor backstop).
        c = d.create(ttl=2)
        assert c["from_pool"] is True
        assert wait_for(lambda: len(pool_rows(d)) == 1)
        pooled = pool_rows(d)[0][0]
        a = d.create(env={"N": "a"}, labels={"k": "a"})
        b = d.create(env={"N": "b"})
        pid = int(d.sh(a["id"], "sleep 300 >/dev/null 2>&1 & echo $!")["stdout"])
        d.request("PUT", files(a["id"], path="/tmp/keep"), b"kept")
        ended = d.sh(a["id"], "echo $N")["exec_id"]
        d.kill9()
        # While it is down: b is destroyed behind its back, c expires.
        assert control_request(control_path(b["id"]), {"op": "destroy"})["ok"]
        assert wait_for(lambda: not os.path.exists(control_path(b["id"])))
        time.sleep(2.2)
        assert info(c["id"])["ok"]  # still running: nobody has destroyed it yet
        d.start()
        ids = [s["id"] for s in d.request("GET", "/v1/sandboxes").json()["sandboxes"]]
        assert ids == [a["id"]]
        got = d.request("GET", f"/v1/sandboxes/{a['id']}").json()
        assert got == a  # nothing lost: policy, labels, times
        assert d.sh(a["id"], f"kill -0 {pid} && echo $N")["stdout"] == "a\n"
        assert d.request("GET", files(a["id"], path="/tmp/keep")).data == b"kept"
        logs = d.request("GET", f"/v1/sandboxes/{a['id']}/logs").json()["execs"]
        assert ended in [x["exec_id"] for x in logs]
        # b's row and events are cleaned; c is destroyed, and its row follows.
        assert b["id"] not in {r[0] for r in d.rows()}
        assert not os.path.exists(os.path.join(d.state, "events", b["id"] + ".jsonl"))
        assert wait_for(lambda: not os.path.exists(control_path(c["id"])))
        assert wait_for(lambda: c["id"] not in {r[0] for r in d.rows()})
        # The pool's sandbox was re-adopted, not replaced.
        assert [r[0] for r in pool_rows(d)] == [pooled]
        log = d.log()
        assert f"{a['id']}: re-adopted" in log and f"{b['id']}: gone" in log
        assert f"{c['id']}: destroy (expired while wardend was down)" in log
    finally:
        d.close()


def test_a_create_never_recorded_is_destroyed_at_start(warden_bin):
    """wardend died while `warden supervise` ran: its events file (events/new-*.jsonl)
    names the sandbox, which the next start destroys."""
    d = Daemon(warden_bin)
    try:
        os.makedirs(os.path.join(d.state, "events"))
        events = os.path.join(d.state, "events", "new-orphan.jsonl")
        r = subprocess.run([warden_bin, "supervise", "-q", "--events", events],
                           capture_output=True, text=True, timeout=30)
        sid = json.loads(r.stdout)["sandbox"]
        assert wait_for(lambda: os.path.getsize(events) > 0)
        assert info(sid)["ok"]
        d.start()
        assert wait_for(lambda: not os.path.exists(control_path(sid)))
        assert not os.path.exists(events)
        assert f"{sid}: started but never recorded; destroyed" in d.log()
    finally:
        d.close()


def test_sigterm_leaves_sandboxes_running(warden_bin):
    d = Daemon(warden_bin)
    try:
        d.start()
        sid = d.create()["id"]
        sv = info(sid)["supervisor_pid"]
        assert d.terminate() == 0
        assert not os.path.exists(d.socket)
        assert alive(sv) and info(sid)["ok"]
        d.start()
        assert d.sh(sid, "echo back")["stdout"] == "back\n"
    finally:
        d.close()


# ---- limits and errors --------------------------------------------------------------


@pytest.fixture(scope="module")
def small(warden_bin):
    d = Daemon(warden_bin, "--max-sandboxes", "1", "--max-body", "64K", "--max-ttl", "100")
    try:
        yield d.start()
    finally:
        d.close()


def chunked_put(d, path, sizes):
    """PUT a chunked body of chunks of these sizes; the status. Each chunk's size line goes
    out before its data, which is not sent once the daemon has answered."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(d.socket)
    s.settimeout(10)
    s.sendall(f"PUT {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
              "Connection: close\r\n\r\n".encode())
    for n in sizes:
        s.sendall(b"%x\r\n" % n)
        time.sleep(0.1)
        s.setblocking(False)
        try:
            answered = s.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            answered = b""
        s.settimeout(10)
        if answered:
            break
        s.sendall(b"x" * n + b"\r\n")
    else:
        s.sendall(b"0\r\n\r\n")
    reply = b""
    while chunk := s.recv(4096):
        reply += chunk
    s.close()
    assert reply.startswith(b"HTTP/1.1 "), reply
    return int(reply.split()[1])


def test_limits(small):
    r = small.request("POST", "/v1/sandboxes", {"ttl": 101})
    assert r.status == 400 and "ttl" in r.error()["message"]
    sid = small.create(ttl=100)["id"]
    r = small.request("POST", "/v1/sandboxes", {})
    assert r.status == 429 and r.error()["code"] == "too_many_sandboxes"
    # Refused from its Content-Length, before it is read (so only the headers are sent:
    # the daemon answers and closes while a client would still be writing).
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(small.socket)
    s.sendall(f"PUT {files(sid, path='/tmp/big')} HTTP/1.1\r\nHost: x\r\n"
              f"Content-Length: {65 << 10}\r\n\r\n".encode())
    head = b""
    while b"\r\n" not in head:
        chunk = s.recv(100)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 413 "), head
    s.close()
    # A chunked body has no Content-Length: it is refused at the first chunk whose size
    # would take it over the limit, before that chunk is read (docs/daemon.md).
    assert chunked_put(small, files(sid, path="/tmp/big"), [32 << 10, (32 << 10) + 1]) == 413
    assert chunked_put(small, files(sid, path="/tmp/ok"), [32 << 10, 32 << 10]) == 201
    assert small.request("PUT", files(sid, path="/tmp/ok"), b"x" * (60 << 10)).status == 201
    small.delete(sid)
    small.delete(small.create()["id"])


ERRORS = [
    # method, path, body, status, code, a word the message must have
    ("GET", "/nope", None, 404, "not_found", "/nope"),
    ("GET", "/v1/sandboxes/0123456789abcdef", None, 404, "not_found", "0123456789abcdef"),
    ("GET", "/v1/sandboxes/xyz", None, 400, "invalid_id", "xyz"),
    ("GET", "/v1/sandboxes/0123456789ABCDEF/stats", None, 400, "invalid_id", "id"),
    ("PATCH", "/v1/sandboxes", "{}", 405, "method_not_allowed", "POST"),
    ("DELETE", "/healthz", None, 405, "method_not_allowed", "GET"),
    ("POST", "/v1/sandboxes", "not json", 400, "invalid_json", "body"),
    ("POST", "/v1/sandboxes", "[]", 400, "invalid_field", "body"),
    ("POST", "/v1/sandboxes", '{"a":1,"a":2}', 400, "invalid_json", "duplicate"),
    ("POST", "/v1/sandboxes", {"bogus": 1}, 400, "unknown_field", "bogus"),
    ("POST", "/v1/sandboxes", {"ttl": "1"}, 400, "invalid_field", "ttl"),
    ("POST", "/v1/sandboxes", {"ttl": 0}, 400, "invalid_field", "ttl"),
    ("POST", "/v1/sandboxes", {"ttl": 1.5}, 400, "invalid_field", "ttl"),
    ("POST", "/v1/sandboxes", {"policy": 3}, 400, "invalid_field", "policy"),
    ("POST", "/v1/sandboxes", {"policy": "../etc/x"}, 400, "invalid_field", "policy"),
    ("POST", "/v1/sandboxes", {"policy": "default", "policy_yaml": "a: 1"}, 400,
     "invalid_field", "policy_yaml"),
    ("POST", "/v1/sandboxes", {"labels": {"k": 1}}, 400, "invalid_field", "labels.k"),
    ("POST", "/v1/sandboxes", {"labels": {"bad key": "v"}}, 400, "invalid_field", "labels"),
    ("POST", "/v1/sandboxes", {"labels": []}, 400, "invalid_field", "labels"),
    ("POST", "/v1/sandboxes", {"env": {"1X": "a"}}, 400, "invalid_field", "env"),
    ("POST", "/v1/sandboxes", {"env": {"X": 1}}, 400, "invalid_field", "env.X"),
    ("GET", "/v1/sandboxes?label=nokey", None, 400, "invalid_parameter", "label"),
    ("GET", "/v1/sandboxes?other=1", None, 400, "unknown_parameter", "other"),
    ("GET", "/healthz", "body", 400, "unexpected_body", "body"),
]

EXEC_ERRORS = [
    ({}, "cmd"), ({"cmd": []}, "cmd"), ({"cmd": "ls"}, "cmd"), ({"cmd": [1]}, "cmd[0]"),
    ({"cmd": [""]}, "cmd[0]"), ({"cmd": ["a", "b\u0000"]}, "cmd[1]"),
    ({"cmd": ["a"], "timeout": -1}, "timeout"), ({"cmd": ["a"], "timeout": "5"}, "timeout"),
    ({"cmd": ["a"], "workdir": "rel"}, "workdir"), ({"cmd": ["a"], "stdin": 5}, "stdin"),
    ({"cmd": ["a"], "env": {"A=B": "c"}}, "env"), ({"cmd": ["a"], "shell": True}, "shell"),
]


def test_malformed_requests_are_4xx_json(daemon, sandbox):
    for method, path, body, status, code, word in ERRORS:
        r = daemon.request(method, path, body)
        assert r.status == status, (method, path, body, r.status, r.data)
        assert r.headers["content-type"] == "application/json"
        e = r.error()
        assert e["code"] == code, (method, path, e)
        assert word in e["message"], (method, path, e)
        if status == 405:
            assert word in r.headers["allow"]
    for body, word in EXEC_ERRORS:
        r = daemon.request("POST", f"/v1/sandboxes/{sandbox}/exec", body)
        assert r.status == 400, (body, r.data)
        assert word in r.error()["message"], (body, r.error())
    kill = f"/v1/sandboxes/{sandbox}/exec/%s/kill"
    assert daemon.request("POST", kill % "0").status == 400
    assert daemon.request("POST", kill % "abc").status == 400
    r = daemon.request("POST", kill % "999999")
    assert r.status == 404 and "999999" in r.error()["message"]
    r = daemon.request("POST", kill % "1", {"signal": 99})
    assert r.status == 400 and "signal" in r.error()["message"]
    r = daemon.request("POST", f"/v1/sandboxes/{sandbox}/pause", "{}")
    assert r.status == 400 and r.error()["code"] == "unexpected_body"


# ---- TCP and tokens -----------------------------------------------------------------


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_tcp_needs_a_token_file(warden_bin):
    d = Daemon(warden_bin, "--listen", "127.0.0.1:%d" % free_port())
    try:
        d.start(wait=False)
        assert d.proc.wait(timeout=10) != 0
        assert "--token-file" in d.log()
    finally:
        d.close()


def test_tcp_bearer_tokens_and_quota(warden_bin):
    port = free_port()
    d = Daemon(warden_bin, "--listen", "127.0.0.1:%d" % port)
    tokens = os.path.join(d.dir, "tokens")
    with open(tokens, "w") as f:
        f.write("# tenants\nalpha-0123456789abcdef quota=1\nbeta-0123456789abcdef\n")
    os.chmod(tokens, 0o600)
    d.argv += ["--token-file", tokens]
    try:
        d.start()
        tcp = Client(tcp=("127.0.0.1", port))
        alpha = {"Authorization": "Bearer alpha-0123456789abcdef"}
        beta = {"Authorization": "Bearer beta-0123456789abcdef"}
        r = tcp.request("GET", "/v1/sandboxes")
        assert r.status == 401 and r.error()["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
        r = tcp.request("GET", "/v1/sandboxes", headers={"Authorization": "Bearer nope"})
        assert r.status == 401
        r = tcp.request("GET", "/v1/sandboxes",
                        headers={"Authorization": "Bearer alpha-0123456789abcdeX"})
        assert r.status == 401
        mine = tcp.request("POST", "/v1/sandboxes", {}, headers=alpha)
        assert mine.status == 201, mine.data
        sid = mine.json()["id"]
        r = tcp.request("POST", "/v1/sandboxes", {}, headers=alpha)
        assert r.status == 429 and r.error()["code"] == "quota_exceeded"
        # A token sees what it made, and only that; the unix socket sees everything.
        assert tcp.request("GET", f"/v1/sandboxes/{sid}", headers=beta).status == 404
        r = tcp.request("POST", f"/v1/sandboxes/{sid}/exec", {"cmd": ["true"]}, headers=beta)
        assert r.status == 404
        assert tcp.request("GET", "/v1/sandboxes", headers=beta).json() == {"sandboxes": []}
        r = tcp.request("POST", f"/v1/sandboxes/{sid}/exec", {"cmd": ["echo", "t"]},
                        headers=alpha)
        assert r.json()["stdout"] == "t\n"
        assert d.request("GET", f"/v1/sandboxes/{sid}").status == 200
        assert tcp.request("DELETE", f"/v1/sandboxes/{sid}", headers=alpha).status == 204
        # A token file others can read is refused.
        os.chmod(tokens, 0o644)
        bad = Daemon(warden_bin, "--listen", "127.0.0.1:%d" % free_port(), "--token-file",
                     tokens)
        bad.start(wait=False)
        assert bad.proc.wait(timeout=10) != 0 and "readable by others" in bad.log()
        bad.close()
    finally:
        d.close()


def test_routes_option_lists_the_routing_table(warden_bin):
    out = subprocess.run([WARDEND, "--routes"], capture_output=True, text=True,
                         check=True).stdout
    lines = out.splitlines()
    assert "POST /v1/sandboxes" in lines and "GET /healthz" in lines
    assert "GET /v1/sandboxes label" in lines
    assert "PUT /v1/sandboxes/{id}/files path,mode" in lines
    assert len(lines) == len(set(lines)) >= 19
