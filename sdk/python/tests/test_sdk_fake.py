"""The SDK against fake_wardend (the API's wire format without sandboxes): error mapping,
streamed exec and events, files, transports. No root needed; the same calls against a
real wardend are in tests/integration/test_sdk.py."""
import os
import shutil
import sys
import tempfile
import threading

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import fake_wardend  # noqa: E402
from warden import (BadRequest, Client, Conflict, ConnectionFailed, NotFound,  # noqa: E402
                    QuotaExceeded, Sandbox, WardenError)


@pytest.fixture(scope="module")
def sock():
    d = tempfile.mkdtemp(prefix="warden-fake-")
    path = os.path.join(d, "sock")
    srv = fake_wardend.serve(path)
    yield path
    srv.shutdown()
    srv.server_close()
    shutil.rmtree(srv.state.root, ignore_errors=True)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def sb(sock):
    with Sandbox(socket=sock, env={"FROM_CREATE": "yes"}) as s:
        yield s


def test_health_and_env_socket(sock, monkeypatch):
    monkeypatch.setenv("WARDEN_SOCKET", sock)
    assert Client().socket == sock
    assert Client().health()


def test_run(sb):
    r = sb.run("echo out; echo err >&2; echo $FROM_CREATE $X; exit 3", env={"X": "x"})
    assert (r.stdout, r.stderr, r.exit_code, r.timed_out) == ("out\nyes x\n", "err\n", 3, False)
    assert not r.ok and isinstance(r.exec_id, int)
    assert sb.run(["cat"], stdin="in").stdout == "in"
    assert sb.run(["sleep", "10"], timeout=0.3).timed_out


def test_exec_streams_before_exit(sb):
    # The command waits for a file that is written only once its first line has arrived:
    # if the output were buffered until the exit, it would wait until its own timeout.
    ex = sb.exec("echo a; i=0; while [ ! -e go ] && [ $i -lt 100 ]; do sleep 0.1; "
                 "i=$((i+1)); done; echo b")
    assert ex.exec_id is not None
    seen = []
    for ev in ex:
        seen.append((ev.type, ev.data))
        if ev.data == "a\n":
            sb.files.write("/go", "")
    assert seen[0][0] == "started"
    assert ("stdout", "b\n") in seen and seen[-1][0] == "exit"
    assert ex.exit_code == 0


def test_exec_kill(sb):
    ex = sb.exec(["sleep", "30"])
    ex.kill(15)
    assert ex.wait().exit_code == 128 + 15


def test_files(sb):
    data = bytes(range(256))
    info = sb.files.write("/blob", data, mode=0o600)
    assert (info.type, info.size, info.mode) == ("file", 256, 0o600)
    assert sb.files.read("/blob") == data
    sb.files.mkdir("/d/e", parents=True)
    sb.files.write("/d/e/f.txt", "héllo")
    assert sb.files.read_text("/d/e/f.txt") == "héllo"
    assert [f.name for f in sb.files.list("/d")] == ["e"]
    assert sb.files.stat("/d").is_dir
    with pytest.raises(Conflict):
        sb.files.mkdir("/d")
    sb.files.remove("/d", recursive=True)
    assert not sb.files.exists("/d")
    with pytest.raises(NotFound) as e:
        sb.files.read("/missing")
    assert e.value.status == 404 and e.value.code == "not_found"
    assert "/missing" in e.value.message
    with pytest.raises(BadRequest):
        sb.files.read("relative")


def test_lifecycle(sock):
    sb = Sandbox.create(socket=sock, labels={"k": "v1"}, ttl=60)
    assert len(sb.id) == 16 and sb.state == "running"
    assert [s.id for s in Sandbox.list(socket=sock, labels={"k": "v1"})] == [sb.id]
    assert Sandbox.connect(sb.id, socket=sock).labels == {"k": "v1"}
    assert sb.pause().state == "paused"
    with pytest.raises(Conflict):
        sb.pause()
    assert sb.resume().state == "running"
    assert "memory_current" in sb.stats()
    sb.run("true")
    assert sb.logs()[-1]["cmd"] == ["sh", "-c", "true"]
    sb.destroy()
    with pytest.raises(NotFound) as e:
        sb.refresh()
    assert sb.id in str(e.value)


def test_events(sock):
    sb = Sandbox(socket=sock)
    sb.run("true")
    got = []
    with sb.events(timeout=10) as evs:
        t = threading.Timer(0.5, sb.destroy)
        t.start()
        got = [e["kind"] for e in evs]
        t.join()
    assert got[0] == "sandbox.start" and "exec" in got and got[-1] == "sandbox.end"


def test_errors(sock, tmp_path):
    with pytest.raises(BadRequest) as e:
        Sandbox(policy="no-such-policy", socket=sock)
    assert "no-such-policy" in e.value.message and e.value.status == 400
    with pytest.raises(BadRequest):
        Sandbox(ttl=-5, socket=sock)
    with pytest.raises(ConnectionFailed) as e:
        Sandbox(socket=str(tmp_path / "none.sock"))
    assert "none.sock" in str(e.value) and e.value.status == 0
    assert issubclass(QuotaExceeded, WardenError)
    with pytest.raises(ValueError):
        Client(socket=sock, url="http://127.0.0.1:1")
    with pytest.raises(ValueError):
        Client(url="ftp://x")
