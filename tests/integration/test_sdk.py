"""The Python SDK (sdk/python) against a real wardend: sandboxes created, commands run
(buffered and streamed), files moved, paused, watched and destroyed through the SDK.

wardend runs as root here, on a socket and a state directory of its own (and on a
loopback TCP port with a token, for the url= transport). These tests skip only while
build/wardend has not been built."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import types
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("WARDEN_BUILD", os.path.join(ROOT, "build"))
WARDEND = os.path.join(BUILD, "wardend")
SDK = os.path.join(ROOT, "sdk", "python")
sys.path.insert(0, SDK)

from warden import (BadRequest, ConnectionFailed, NotFound,  # noqa: E402
                    PayloadTooLarge, QuotaExceeded, Sandbox, Unauthorized, WardenError)

TOKEN = "sdk-test-" + uuid.uuid4().hex
QUOTA_TOKEN = "sdk-quota-" + uuid.uuid4().hex  # may hold one sandbox at a time
MAX_BODY = 1 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_wardend(tmp, extra=()):
    """Start build/wardend on TMP/sock with TMP/state; return (process, socket, url)."""
    if not os.path.exists(WARDEND):
        pytest.skip(f"{WARDEND} is not built yet")
    helptext = subprocess.run([WARDEND, "--help"], capture_output=True, text=True,
                              timeout=10).stdout
    sock, state = os.path.join(tmp, "sock"), os.path.join(tmp, "state")
    argv = [WARDEND, "--socket", sock, "--state-dir", state, *extra]
    if "--max-body" in helptext:
        argv += ["--max-body", str(MAX_BODY)]
    if "--warden" in helptext:
        argv += ["--warden", os.path.join(BUILD, "warden")]
    url = None
    if "--listen" in helptext and "--token-file" in helptext:
        tokens = os.path.join(tmp, "tokens")
        with open(tokens, "w") as f:
            f.write(f"{TOKEN}\n{QUOTA_TOKEN} quota=1\n")
        os.chmod(tokens, 0o600)
        port = free_port()
        argv += ["--listen", f"127.0.0.1:{port}", "--token-file", tokens]
        url = f"http://127.0.0.1:{port}"
    log = os.path.join(tmp, "wardend.log")
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log) as f:
                pytest.fail(f"wardend exited with {proc.returncode}: {f.read()}")
        if os.path.exists(sock):
            try:
                r = subprocess.run(
                    [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
                     "from warden import Client; Client(socket=sys.argv[2]).health()",
                     SDK, sock], capture_output=True, timeout=10)
                if r.returncode == 0:
                    return proc, sock, url
            except subprocess.TimeoutExpired:
                pass
        time.sleep(0.1)
    proc.kill()
    pytest.fail("wardend did not answer /healthz within 30 s")


def stop_wardend(proc, sock):
    """Destroy what is left (wardend leaves sandboxes running when it stops), stop it."""
    try:
        for sb in Sandbox.list(socket=sock):
            try:
                sb.destroy()
            except WardenError:
                pass
    except WardenError:
        pass
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def wardend():
    tmp = tempfile.mkdtemp(prefix="warden-sdk-")
    os.chmod(tmp, 0o755)
    try:
        proc, sock, url = start_wardend(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    yield types.SimpleNamespace(socket=sock, url=url, tmp=tmp)
    stop_wardend(proc, sock)
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def sb(wardend):
    with Sandbox(socket=wardend.socket, ttl=600, env={"FROM_CREATE": "yes"},
                 labels={"test": "sdk"}) as s:
        yield s


# ---- packaging (no wardend needed) ---------------------------------------------------

def test_pip_install_offline(tmp_path):
    """`pip install --no-build-isolation` builds and installs the SDK with the installed
    setuptools, offline."""
    try:
        import setuptools  # noqa: F401
        import wheel  # noqa: F401
    except ImportError as e:
        pytest.skip(f"{sys.executable} has no {e.name} (Debian: python3-setuptools, "
                    "python3-wheel)")
    src = tmp_path / "src"
    shutil.copytree(SDK, src, ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                            "__pycache__"))
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation",
                        "--no-deps", "--no-index", "--no-cache-dir", "--target", str(target),
                        str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-c", "import warden, sys; print(warden.__file__);"
                        "from warden import Sandbox, NotFound, Result"],
                       capture_output=True, text=True, cwd=str(tmp_path),
                       env={"PYTHONPATH": str(target), "PATH": os.environ["PATH"]})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(str(target))


# ---- sandboxes -----------------------------------------------------------------------

def test_create_run_destroy(wardend):
    with Sandbox(socket=wardend.socket) as sb:
        assert len(sb.id) == 16 and int(sb.id, 16) >= 0
        assert sb.state == "running" and sb.policy == "default"
        assert sb.created_at and sb.expires_at
        r = sb.run(["echo", "hello"])
        assert (r.stdout, r.stderr, r.exit_code, r.timed_out) == ("hello\n", "", 0, False)
        assert r.ok and isinstance(r.exec_id, int)
        sid = sb.id
    with pytest.raises(NotFound) as e:
        Sandbox.connect(sid, socket=wardend.socket)
    assert e.value.status == 404 and e.value.code


def test_run_output_status_env_workdir_stdin(sb):
    r = sb.run("echo out; echo err >&2; exit 3")
    assert (r.stdout, r.stderr, r.exit_code) == ("out\n", "err\n", 3)
    assert not r.ok
    r = sb.run(["sh", "-c", 'echo "$FROM_CREATE $MINE"; pwd'], env={"MINE": "x"},
               workdir="/tmp")
    assert r.stdout == "yes x\n/tmp\n", r
    assert sb.run(["cat"], stdin="line one\nline two\n").stdout == "line one\nline two\n"
    r = sb.run(["/no/such/program"])
    assert r.exit_code == 127 and "/no/such/program" in r.error
    assert sb.exec(["/no/such/program"]).wait().error == r.error


def test_run_timeout(sb):
    r = sb.run(["sleep", "60"], timeout=1)
    assert r.timed_out and not r.ok


def test_commands_share_the_sandbox(sb):
    assert sb.run("echo kept > /tmp/state.txt").ok
    assert sb.run("cat /tmp/state.txt").stdout == "kept\n"


def test_exec_streams_before_exit(sb):
    # The command waits for a file that the test writes only once the command's first
    # line has arrived: if output were held until the exit, the command would run into
    # its own 20 s limit and print "late" instead of "b".
    ex = sb.exec("echo a; i=0; while [ ! -e /tmp/go ] && [ $i -lt 200 ]; do sleep 0.1; "
                 "i=$((i+1)); done; [ -e /tmp/go ] && echo b || echo late")
    assert ex.exec_id is not None and ex.pid
    events = []
    for ev in ex:
        events.append(ev)
        if ev.type == "stdout" and "a\n" in ev.data:
            sb.files.write("/tmp/go", "")
    types_ = [e.type for e in events]
    assert types_[0] == "started" and types_[-1] == "exit" and types_.count("exit") == 1
    out = "".join(e.data for e in events if e.type == "stdout")
    assert out == "a\nb\n"
    assert ex.exit_code == 0 and not ex.timed_out


def test_exec_stderr_and_kill(sb):
    ex = sb.exec("echo to-err >&2; exec sleep 60")
    for ev in ex:
        if ev.type == "stderr":
            assert ev.data == "to-err\n"
            ex.kill(15)
        if ev.type == "exit":
            assert ev.exit_code == 128 + 15
    assert ex.exit_code == 143
    ex = sb.exec(["sleep", "60"])
    ex.kill()
    assert ex.wait().exit_code == 137


def test_files(sb):
    data = bytes(range(256)) * 64
    info = sb.files.write("/tmp/blob", data, mode=0o600)
    assert (info.type, info.size, info.mode) == ("file", len(data), 0o600)
    assert sb.files.read("/tmp/blob") == data
    st = sb.files.stat("/tmp/blob")
    assert st.is_file and st.name == "blob" and st.path == "/tmp/blob" and st.mtime
    # Visible to the sandbox's commands, and theirs to the SDK, owned by the sandbox user.
    r = sb.run("sha256sum /tmp/blob | cut -c1-64; stat -c %u /tmp/blob; id -u")
    import hashlib
    digest, owner, uid = r.stdout.split()
    assert digest == hashlib.sha256(data).hexdigest()
    assert owner == uid
    sb.run("mkdir -p /tmp/made && printf made > /tmp/made/by-cmd")
    assert sb.files.read_text("/tmp/made/by-cmd") == "made"
    sb.files.mkdir("/tmp/a/b/c", parents=True)
    sb.files.write("/tmp/a/b/c/t.txt", "héllo\n")
    assert sb.files.read_text("/tmp/a/b/c/t.txt") == "héllo\n"
    assert [(f.name, f.type) for f in sb.files.list("/tmp/a")] == [("b", "dir")]
    assert sb.files.stat("/tmp/a/b").is_dir
    with pytest.raises(WardenError):
        sb.files.remove("/tmp/a")  # not empty, not recursive
    sb.files.remove("/tmp/a", recursive=True)
    assert not sb.files.exists("/tmp/a")
    sb.files.remove("/tmp/blob")
    assert not sb.files.exists("/tmp/blob")


def test_files_errors(sb):
    with pytest.raises(NotFound) as e:
        sb.files.read("/tmp/no-such-file")
    assert "no-such-file" in e.value.message
    with pytest.raises(BadRequest) as e:
        sb.files.read("relative/path")
    assert "path" in e.value.message
    with pytest.raises(NotFound):
        sb.files.write("/tmp/no/such/dir/f", b"x")


def test_files_stay_inside(sb):
    # Paths are resolved inside the sandbox's root: ".." cannot climb out of it (as it
    # would out of /proc/PID/root by string concatenation), and a symlink the sandbox
    # plants to "/" means the sandbox's "/", not the host's.
    name = f"warden-sdk-{uuid.uuid4().hex}"
    try:
        sb.files.write(f"/../../../../tmp/{name}-dots", "inside")
        assert sb.run(f"cat /tmp/{name}-dots").stdout == "inside"
        assert sb.run(["ln", "-s", "/", "/tmp/root-link"]).ok
        sb.files.write(f"/tmp/root-link/tmp/{name}-link", "inside")
        assert sb.run(f"cat /tmp/{name}-link").stdout == "inside"
        assert sb.files.read(f"/tmp/root-link/tmp/{name}-link") == b"inside"
    finally:
        for suffix in ("dots", "link"):
            host = f"/tmp/{name}-{suffix}"
            escaped = os.path.exists(host)
            if escaped:
                os.unlink(host)
            assert not escaped, f"{host} was written on the host"


def test_lifecycle_list_connect_pause(wardend):
    tag = uuid.uuid4().hex[:12]
    sb = Sandbox.create(socket=wardend.socket, ttl=300, labels={"tag": tag})
    try:
        assert [s.id for s in Sandbox.list(socket=wardend.socket, labels={"tag": tag})] \
            == [sb.id]
        other = Sandbox.connect(sb.id, socket=wardend.socket)
        assert other.labels == {"tag": tag}
        assert sb.pause().state == "paused"
        assert other.refresh().state == "paused"
        assert sb.resume().state == "running"
        assert sb.run("echo alive").stdout == "alive\n"
        stats = sb.stats()
        assert isinstance(stats, dict) and "memory_current" in stats
        logs = sb.logs()
        assert logs[-1]["cmd"] == ["sh", "-c", "echo alive"] and logs[-1]["exit_code"] == 0
    finally:
        sb.destroy()
    with pytest.raises(NotFound):
        sb.destroy()


def test_events(sb):
    sb.run(["true"])
    with sb.events(timeout=30) as evs:
        first = next(evs)
    assert isinstance(first, dict) and first.get("kind")


def test_policy_yaml(wardend):
    with open(os.path.join(ROOT, "policies", "strict.yaml")) as f:
        text = f.read()
    with Sandbox(policy_yaml=text, socket=wardend.socket) as sb:
        assert sb.run(["echo", "inline"]).stdout == "inline\n"


def test_errors(wardend, tmp_path):
    with pytest.raises(WardenError) as e:
        Sandbox(policy="no-such-policy", socket=wardend.socket)
    assert 400 <= e.value.status < 500 and "no-such-policy" in e.value.message
    with pytest.raises(BadRequest) as e:
        Sandbox(ttl=0, socket=wardend.socket)
    assert "ttl" in e.value.message
    with pytest.raises(NotFound):
        Sandbox.connect("0123456789abcdef", socket=wardend.socket)
    with pytest.raises(ConnectionFailed) as e:
        Sandbox(socket=str(tmp_path / "none.sock"))
    assert "none.sock" in str(e.value)


def test_tcp_with_token(wardend):
    if not wardend.url:
        pytest.skip("this wardend has no --listen/--token-file")
    with Sandbox(url=wardend.url, token=TOKEN) as sb:
        assert sb.run("echo tcp").stdout == "tcp\n"
        assert sb.files.write("/tmp/t", "x").size == 1
    with pytest.raises(Unauthorized):
        Sandbox(url=wardend.url, token="wrong")
    with pytest.raises(Unauthorized):
        Sandbox(url=wardend.url, token="")


def test_quota_and_body_limit(wardend):
    if not wardend.url:
        pytest.skip("this wardend has no --listen/--token-file")
    with Sandbox(url=wardend.url, token=QUOTA_TOKEN) as sb:
        with pytest.raises(QuotaExceeded) as e:
            Sandbox(url=wardend.url, token=QUOTA_TOKEN)
        assert e.value.status == 429 and e.value.message
        with pytest.raises(PayloadTooLarge) as e:
            sb.files.write("/tmp/big", b"x" * (2 * MAX_BODY))
        assert e.value.status == 413
        assert sb.files.write("/tmp/small", b"x" * (MAX_BODY // 2)).size == MAX_BODY // 2
