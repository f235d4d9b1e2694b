"""warden's client verbs (create, exec, cp, ps, rm, pause, resume, logs, events) against a
real wardend, over its unix socket and over TCP with a token.

wardend runs as root here, on a socket and a state directory of its own. These tests skip
only while build/wardend has not been built."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import types
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("WARDEN_BUILD", os.path.join(ROOT, "build"))
WARDEND = os.path.join(BUILD, "wardend")
WARDEN = os.path.join(BUILD, "warden")
TOKEN = "client-test-" + uuid.uuid4().hex
QUOTA_TOKEN = "client-quota-" + uuid.uuid4().hex  # may hold one sandbox at a time
MAX_BODY = 1 << 20
ID = re.compile(r"^[0-9a-f]{16}$")
GONE = re.compile(r"not found|no such sandbox")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon(types.SimpleNamespace):
    def warden(self, *args, input=None, timeout=60, env=None, url=False):
        """Run `warden ARGS` against this wardend (its socket, or its url with --url)."""
        e = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
        if url:
            e.update(WARDEN_URL=self.url, WARDEN_TOKEN=TOKEN)
        else:
            e["WARDEN_SOCKET"] = self.socket
        e.update(env or {})
        return subprocess.run([WARDEN, *args], capture_output=True, text=True, input=input,
                              timeout=timeout, env=e)

    def create(self, *args):
        r = self.warden("create", *args)
        assert r.returncode == 0, r.stderr
        sid = r.stdout.strip()
        assert ID.match(sid), r.stdout
        return sid


@pytest.fixture(scope="module")
def wardend():
    if not os.path.exists(WARDEND):
        pytest.skip(f"{WARDEND} is not built yet")
    tmp = tempfile.mkdtemp(prefix="warden-client-")
    os.chmod(tmp, 0o755)
    try:
        proc, d = start(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    yield d
    # wardend leaves sandboxes running when it stops: remove what the tests made.
    left = d.warden("ps", "-q").stdout.split()
    if left:
        d.warden("rm", *left)
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    shutil.rmtree(tmp, ignore_errors=True)


def start(tmp):
    """Start build/wardend on TMP/sock with TMP/state; return (process, Daemon)."""
    helptext = subprocess.run([WARDEND, "--help"], capture_output=True, text=True,
                              timeout=10).stdout
    sock = os.path.join(tmp, "sock")
    argv = [WARDEND, "--socket", sock, "--state-dir", os.path.join(tmp, "state")]
    if "--warden" in helptext:
        argv += ["--warden", WARDEN]
    if "--max-body" in helptext:
        argv += ["--max-body", str(MAX_BODY)]
    url = None
    if "--listen" in helptext and "--token-file" in helptext:
        tokens = os.path.join(tmp, "tokens")
        with open(tokens, "w") as f:
            f.write(f"{TOKEN}\n{QUOTA_TOKEN} quota=1\n")
        os.chmod(tokens, 0o600)
        url = f"http://127.0.0.1:{free_port()}"
        argv += ["--listen", url[len("http://"):], "--token-file", tokens]
    log = os.path.join(tmp, "wardend.log")
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
    d = Daemon(socket=sock, url=url, tmp=tmp)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            with open(log) as f:
                pytest.fail(f"wardend exited with {proc.returncode}: {f.read()}")
        if os.path.exists(sock) and d.warden("ps", "-q").returncode == 0:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("wardend did not answer within 30 s")
        time.sleep(0.1)
    return proc, d


@pytest.fixture(scope="module")
def sid(wardend):
    """One sandbox shared by the tests that only run commands and copy files."""
    return wardend.create("--ttl", "900", "--label", "suite=client", "-e", "FROM_CREATE=yes")


# ---- create, ps, rm ------------------------------------------------------------------

def test_create_ps_rm(wardend):
    tag = uuid.uuid4().hex[:10]
    a = wardend.create("--label", f"tag={tag}", "--label", "role=a")
    b = wardend.create("--policy", "strict", "--label", f"tag={tag}", "--ttl", "120")
    r = wardend.warden("ps")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "POLICY", "STATE"]
    rows = {ln.split()[0]: ln.split() for ln in lines[1:]}
    assert rows[a][1:3] == ["default", "running"] and rows[b][1] == "strict"
    assert f"tag={tag}" in rows[a][-1] and "role=a" in rows[a][-1]
    r = wardend.warden("ps", "--json", "--label", f"tag={tag}")
    listed = json.loads(r.stdout)
    assert sorted(s["id"] for s in listed) == sorted([a, b])
    assert all(s["labels"]["tag"] == tag for s in listed)
    r = wardend.warden("ps", "-q", "--label", f"tag={tag}", "--label", "role=a")
    assert r.stdout.split() == [a]
    r = wardend.warden("rm", a, b)
    assert r.returncode == 0, r.stderr
    assert a not in wardend.warden("ps", "-q").stdout.split()
    r = wardend.warden("rm", a)
    assert r.returncode == 125
    assert r.stderr.startswith("warden: rm: ") and a in r.stderr and GONE.search(r.stderr)


def test_create_with_policy_file_and_json(wardend):
    r = wardend.warden("create", "--json", "--policy",
                       os.path.join(ROOT, "policies", "strict.yaml"))
    assert r.returncode == 0, r.stderr
    sb = json.loads(r.stdout)
    assert ID.match(sb["id"]) and sb["state"] == "running"
    assert wardend.warden("exec", sb["id"], "--", "true").returncode == 0
    wardend.warden("rm", sb["id"])


def test_create_errors(wardend):
    r = wardend.warden("create", "--policy", "no-such-policy")
    assert r.returncode == 125 and not r.stdout
    assert r.stderr.startswith("warden: create: ") and "no-such-policy" in r.stderr
    r = wardend.warden("create", "--ttl", "0")
    assert r.returncode == 125 and "--ttl" in r.stderr
    r = wardend.warden("create", "--label", "novalue")
    assert r.returncode == 125 and "KEY=VALUE" in r.stderr


# ---- exec ----------------------------------------------------------------------------

def test_exec_output_and_status(wardend, sid):
    r = wardend.warden("exec", sid, "--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (r.returncode, r.stdout, r.stderr) == (7, "out\n", "err\n")
    r = wardend.warden("exec", "-e", "MINE=x", "-w", "/tmp", sid, "--", "sh", "-c",
                       'echo "$FROM_CREATE $MINE $(pwd)"')
    assert (r.returncode, r.stdout) == (0, "yes x /tmp\n"), r.stderr
    r = wardend.warden("exec", sid, "/no/such/program")
    assert r.returncode == 127
    assert r.stderr.startswith("warden: exec: ") and "/no/such/program" in r.stderr


def test_exec_into_a_closed_pipe(wardend):
    # `warden exec ID -- yes | head -1`: as in a local pipeline, the command gets SIGPIPE
    # and so do we.
    s = wardend.create()
    r = subprocess.run(f"'{WARDEN}' exec {s} -- yes | head -1; echo \"${{PIPESTATUS[0]}}\"",
                       shell=True, executable="/bin/bash", capture_output=True, text=True,
                       timeout=60, env={"WARDEN_SOCKET": wardend.socket,
                                        "PATH": os.environ["PATH"]})
    assert r.stdout.split() == ["y", str(128 + signal.SIGPIPE)], r.stderr
    deadline = time.monotonic() + 30
    while True:
        execs = json.loads(wardend.warden("logs", "--json", s).stdout)
        if execs[0]["exit_code"] is not None or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert execs[0]["exit_code"] == 128 + signal.SIGPIPE
    wardend.warden("rm", s)


def test_exec_stdin(wardend, sid):
    r = wardend.warden("exec", "-i", sid, "--", "sort", input="b\na\n")
    assert (r.returncode, r.stdout) == (0, "a\nb\n"), r.stderr
    # Without -i the command's stdin is empty.
    r = wardend.warden("exec", sid, "--", "cat", input="ignored\n")
    assert (r.returncode, r.stdout) == (0, "")


def test_exec_streams_before_exit(wardend, sid):
    # The command waits for a file that the test copies in only after reading the
    # command's first line from warden's stdout: buffered output would make it wait its
    # 20 s out and print "late".
    flag = f"/tmp/go-{uuid.uuid4().hex}"
    p = subprocess.Popen([WARDEN, "exec", sid, "--", "sh", "-c",
                          f"echo a; i=0; while [ ! -e {flag} ] && [ $i -lt 200 ]; do "
                          f"sleep 0.1; i=$((i+1)); done; [ -e {flag} ] && echo b || echo late"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={"WARDEN_SOCKET": wardend.socket, "PATH": os.environ["PATH"]})
    try:
        assert p.stdout.readline() == "a\n"
        r = wardend.warden("cp", "-", f"{sid}:{flag}", input="")
        assert r.returncode == 0, r.stderr
        assert p.stdout.read() == "b\n"
        assert p.wait(timeout=60) == 0
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate()


def test_exec_timeout_and_signals(wardend, sid):
    r = wardend.warden("exec", "--timeout", "1", sid, "--", "sleep", "60")
    assert r.returncode == 124, r.stderr
    p = subprocess.Popen([WARDEN, "exec", sid, "--", "sh", "-c", "echo up; exec sleep 60"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={"WARDEN_SOCKET": wardend.socket, "PATH": os.environ["PATH"]})
    try:
        assert p.stdout.readline() == "up\n"
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate()


def test_exec_errors(wardend):
    missing = "0123456789abcdef"
    r = wardend.warden("exec", missing, "--", "true")
    assert r.returncode == 125
    assert r.stderr.startswith("warden: exec: ") and missing in r.stderr
    assert GONE.search(r.stderr), r.stderr
    r = wardend.warden("exec", missing)
    assert r.returncode == 125 and "no command" in r.stderr
    r = wardend.warden("exec", "--socket", os.path.join(wardend.tmp, "none.sock"), missing,
                       "true")
    assert r.returncode == 125 and "none.sock" in r.stderr and "connect" in r.stderr


# ---- cp ------------------------------------------------------------------------------

def test_cp_file_both_ways(wardend, sid, tmp_path):
    src = tmp_path / "up.bin"
    data = os.urandom(300000)
    src.write_bytes(data)
    os.chmod(src, 0o640)
    r = wardend.warden("cp", str(src), f"{sid}:/tmp/")
    assert r.returncode == 0, r.stderr
    r = wardend.warden("exec", sid, "--", "sh", "-c", "stat -c '%s %a' /tmp/up.bin")
    assert r.stdout.split() == [str(len(data)), "640"]
    r = wardend.warden("cp", f"{sid}:/tmp/up.bin", str(tmp_path / "down.bin"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "down.bin").read_bytes() == data
    # stdin and stdout
    r = wardend.warden("cp", "-", f"{sid}:/tmp/from-stdin.txt", input="via stdin\n")
    assert r.returncode == 0, r.stderr
    r = wardend.warden("cp", f"{sid}:/tmp/from-stdin.txt", "-")
    assert (r.returncode, r.stdout) == (0, "via stdin\n")
    # into an existing local directory
    r = wardend.warden("cp", f"{sid}:/tmp/from-stdin.txt", str(tmp_path))
    assert (tmp_path / "from-stdin.txt").read_text() == "via stdin\n"


def test_cp_directory(wardend, sid, tmp_path):
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a\n")
    (tree / "sub" / "b.txt").write_text("b\n")
    r = wardend.warden("cp", str(tree), f"{sid}:/tmp/")
    assert r.returncode == 0, r.stderr
    r = wardend.warden("exec", sid, "--", "sh", "-c", "cd /tmp/tree && find . -type f | sort")
    assert r.stdout.split() == ["./a.txt", "./sub/b.txt"]
    r = wardend.warden("cp", f"{sid}:/tmp/tree", str(tmp_path / "back"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back" / "sub" / "b.txt").read_text() == "b\n"


def test_cp_errors(wardend, sid, tmp_path):
    r = wardend.warden("cp", f"{sid}:/tmp/no-such-file", str(tmp_path / "x"))
    assert r.returncode == 125
    assert r.stderr.startswith("warden: cp: ") and "no-such-file" in r.stderr
    assert not (tmp_path / "x").exists()
    r = wardend.warden("cp", str(tmp_path), str(tmp_path / "y"))
    assert r.returncode == 125 and "ID:/path" in r.stderr
    r = wardend.warden("cp", str(tmp_path / "nothing"), f"{sid}:/tmp/z")
    assert r.returncode == 125 and "nothing" in r.stderr
    r = wardend.warden("cp", "-", f"{sid}:relative", input="x")
    assert r.returncode == 125 and "absolute" in r.stderr
    big = tmp_path / "big"
    big.write_bytes(b"x" * (2 * MAX_BODY))
    r = wardend.warden("cp", str(big), f"{sid}:/tmp/big")
    assert r.returncode == 125 and r.stderr.startswith("warden: cp: ") and "413" in r.stderr


# ---- pause, resume, logs, events -----------------------------------------------------

def test_pause_resume(wardend):
    s = wardend.create()
    r = wardend.warden("pause", s)
    assert r.returncode == 0, r.stderr
    state = {x["id"]: x["state"] for x in json.loads(wardend.warden("ps", "--json").stdout)}
    assert state[s] == "paused"
    r = wardend.warden("resume", s)
    assert r.returncode == 0, r.stderr
    state = {x["id"]: x["state"] for x in json.loads(wardend.warden("ps", "--json").stdout)}
    assert state[s] == "running"
    assert wardend.warden("exec", s, "--", "true").returncode == 0
    wardend.warden("rm", s)
    r = wardend.warden("pause", s)
    assert r.returncode == 125 and s in r.stderr


def test_logs(wardend):
    s = wardend.create()
    wardend.warden("exec", s, "--", "sh", "-c", "exit 3")
    wardend.warden("exec", s, "--", "echo", "two words")
    r = wardend.warden("logs", s)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:2] == ["EXEC", "EXIT"]
    assert lines[1].split()[1] == "3" and lines[1].endswith("sh -c exit 3")
    assert lines[2].endswith("echo two words")
    execs = json.loads(wardend.warden("logs", "--json", s).stdout)
    assert [x["cmd"] for x in execs] == [["sh", "-c", "exit 3"], ["echo", "two words"]]
    assert [x["exit_code"] for x in execs] == [3, 0]
    wardend.warden("rm", s)
    r = wardend.warden("logs", s)
    assert r.returncode == 125


def test_events_streams(wardend):
    s = wardend.create()
    wardend.warden("exec", s, "--", "true")
    p = subprocess.Popen([WARDEN, "events", s], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env={"WARDEN_SOCKET": wardend.socket,
                                         "PATH": os.environ["PATH"]})
    try:
        first = json.loads(p.stdout.readline())
        assert isinstance(first, dict) and first.get("kind")
        # The stream ends when the sandbox does.
        assert wardend.warden("rm", s).returncode == 0
        p.stdout.read()
        assert p.wait(timeout=60) in (0, 125)
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate()


# ---- transports ----------------------------------------------------------------------

def test_url_and_token(wardend):
    if not wardend.url:
        pytest.skip("this wardend has no --listen/--token-file")
    r = wardend.warden("create", url=True)
    assert r.returncode == 0, r.stderr
    s = r.stdout.strip()
    r = wardend.warden("exec", s, "--", "echo", "over tcp", url=True)
    assert (r.returncode, r.stdout) == (0, "over tcp\n"), r.stderr
    r = wardend.warden("ps", "-q", url=True)
    assert s in r.stdout.split()
    r = wardend.warden("ps", "--url", wardend.url, "--token", "wrong")
    assert r.returncode == 125 and r.stderr.startswith("warden: ps: ")
    assert wardend.warden("rm", s, url=True).returncode == 0
    r = wardend.warden("create", "--url", wardend.url, "--token", QUOTA_TOKEN)
    assert r.returncode == 0, r.stderr
    q = r.stdout.strip()
    r = wardend.warden("create", "--url", wardend.url, "--token", QUOTA_TOKEN)
    assert r.returncode == 125 and r.stderr.startswith("warden: create: ") and not r.stdout
    # A token sees only its own sandboxes (the unix socket sees all).
    assert q not in wardend.warden("ps", "-q", url=True).stdout.split()
    assert q in wardend.warden("ps", "-q").stdout.split()
    r = wardend.warden("rm", "--url", wardend.url, "--token", QUOTA_TOKEN, q)
    assert r.returncode == 0, r.stderr


def test_help_and_usage(wardend):
    for verb in ("create", "exec", "cp", "ps", "rm", "pause", "resume", "logs", "events"):
        r = wardend.warden(verb, "--help")
        assert r.returncode == 0 and r.stdout.startswith(f"usage: warden {verb}"), verb
    r = wardend.warden("ps", "--bogus")
    assert r.returncode == 125 and "--bogus" in r.stderr
