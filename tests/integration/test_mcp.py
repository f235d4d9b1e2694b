"""warden mcp: the Model Context Protocol server (docs/mcp.md).

Two kinds of test:
- the official MCP TypeScript SDK (tests/mcp/client.mjs, run once per module) drives the
  server the way an MCP host does: initialize, tools/list, every tool, and the errors a
  model provokes, the output validated by the SDK against each tool's outputSchema;
- raw JSON-RPC written to the server's stdin from here: the protocol errors an SDK never
  sends (malformed JSON, unknown methods, wrong params), and the sandbox's life (made at the
  first tool call, destroyed at EOF, on SIGTERM, or by the watchdog after SIGKILL).

As root (the sandboxes' control sockets are then in /run/warden/sandboxes); one test runs
the server rootless."""
import json
import os
import re
import select
import shutil
import signal
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT_DIR = os.path.join(ROOT, "tests", "mcp")
SOCKETS = "/run/warden/sandboxes"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="warden mcp tests run as root")


# ---- the SDK client ---------------------------------------------------------------


def _npm_ready():
    """Install the SDK (tests/mcp/package-lock.json) into tests/mcp/node_modules unless
    the locked version is already there."""
    with open(os.path.join(CLIENT_DIR, "package-lock.json")) as f:
        want = json.load(f)["packages"]["node_modules/@modelcontextprotocol/sdk"]["version"]
    have_path = os.path.join(CLIENT_DIR, "node_modules", "@modelcontextprotocol", "sdk",
                             "package.json")
    if os.path.exists(have_path):
        with open(have_path) as f:
            if json.load(f)["version"] == want:
                return
    r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=CLIENT_DIR,
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.fail(f"npm ci in tests/mcp failed:\n{r.stdout}\n{r.stderr}")


@pytest.fixture(scope="module")
def sdk(warden):
    """The summary client.mjs prints after driving `warden mcp` through the SDK."""
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is missing (scripts/setup.sh installs it)")
    _npm_ready()
    r = subprocess.run(["node", os.path.join(CLIENT_DIR, "client.mjs"), warden],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"client.mjs failed:\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)


def test_sdk_initialize(sdk):
    assert sdk["server"]["name"] == "warden"
    assert sdk["capabilities"]["tools"] == {"listChanged": False}
    assert "sandbox" in sdk["instructions"]
    assert sdk["ping"] == {"ok": True, "value": {}}


def test_sdk_lists_tools_with_schemas(sdk):
    tools = sdk["tools"]
    assert set(tools) == {"run_command", "write_file", "read_file", "list_files"}
    for name, t in tools.items():
        assert t["input"]["type"] == "object", name
        assert t["input"]["additionalProperties"] is False, name
        assert t["output"]["type"] == "object", name
    assert tools["read_file"]["readOnly"] is True
    assert tools["list_files"]["readOnly"] is True
    assert tools["run_command"]["readOnly"] is False
    assert set(tools["run_command"]["output"]["required"]) == {
        "exit_code", "stdout", "stderr", "timed_out"}
    assert tools["write_file"]["input"]["required"] == ["path", "content"]


def ok(check):
    """A successful tool result: its structured content (which the SDK validated against
    the tool's outputSchema; it throws otherwise)."""
    assert check["ok"], check
    assert check["isError"] is False, check
    assert json.loads(check["text"]) == check["structured"]
    return check["structured"]


def tool_error(check):
    assert check["ok"], check
    assert check["isError"] is True, check
    assert check["structured"] is None
    return check["text"]


def test_sdk_run_command(sdk):
    c = sdk["checks"]
    assert ok(c["echo"]) == {"exit_code": 0, "stdout": "hello\n", "stderr": "oops\n",
                             "timed_out": False, "truncated": False}
    # A command that fails is not a tool error: the model reads its exit code.
    assert ok(c["exit3"])["exit_code"] == 3
    assert ok(c["argv"])["stdout"] == "a-b"
    assert ok(c["env_workdir"])["stdout"] == "hi /tmp"
    assert ok(c["after_errors"])["stdout"] == "still here\n"


def test_sdk_run_command_errors_and_limits(sdk):
    c = sdk["checks"]
    assert "could not run /no/such/program" in tool_error(c["not_found"])
    t = ok(c["timeout"])
    assert t["timed_out"] is True and t["exit_code"] == 128 + 9
    big = ok(c["big_output"])
    assert big["truncated"] is True and big["exit_code"] == 0
    assert big["stdout"] == "x" * (1 << 20)


def test_sdk_files(sdk):
    c = sdk["checks"]
    text = "héllo, wörld ✓\nsecond line\n"
    assert ok(c["write"]) == {"path": "/tmp/work/sub/hello.txt",
                              "bytes": len(text.encode())}
    assert ok(c["write_mode"])["bytes"] == len("#!/bin/sh\necho ran\n")
    r = ok(c["read"])
    assert r["content"] == text and r["truncated"] is False
    assert r["size"] == len(text.encode())
    # What write_file made is the sandbox user's, and the mode was applied.
    assert ok(c["read_back_in_sandbox"])["stdout"] == text + "ran\nagent\n"
    t = ok(c["read_truncated"])
    assert t["truncated"] is True and t["content"] == "héll"
    entries = ok(c["list"])["entries"]
    assert [(e["name"], e["type"]) for e in entries] == [("run.sh", "file"), ("sub", "dir")]
    assert entries[0]["size"] == len("#!/bin/sh\necho ran\n")


def test_sdk_file_errors_are_tool_errors(sdk):
    c = sdk["checks"]
    assert "No such file or directory" in tool_error(c["read_missing"])
    assert "No such file or directory" in tool_error(c["list_missing"])
    assert "directory" in tool_error(c["read_dir"])
    assert "Read-only file system" in tool_error(c["write_readonly"])


def test_sdk_planted_symlink_stays_inside(sdk):
    """`ln -s /etc/shadow /tmp/s` in the sandbox, then read_file /tmp/s: the link resolves
    inside the sandbox, whose /etc/shadow (the host's, bound read-only) the sandbox user
    may not read, so neither may read_file, though the server runs as root."""
    c = sdk["checks"]
    assert ok(c["plant"])["stdout"].endswith("/tmp/s -> /etc/shadow\n")
    assert sdk["host_shadow_readable"] is True
    assert "Permission denied" in tool_error(c["symlink_read"])
    assert "Permission denied" in tool_error(c["dotdot_read"])
    assert "Permission denied" in tool_error(c["shadow_direct"])
    assert sdk["shadow_leaked"] is False


def test_sdk_invalid_arguments_are_protocol_errors(sdk):
    c = sdk["checks"]
    for name, words in (("invalid_type", "path"), ("invalid_relative", "absolute"),
                        ("invalid_missing", "content"), ("invalid_both", "exactly one"),
                        ("invalid_extra", "recursive"), ("invalid_timeout", "timeout_s"),
                        ("unknown_tool", "no_such_tool")):
        assert c[name]["ok"] is False, name
        assert c[name]["code"] == -32602, name
        assert words in c[name]["message"], name


def test_sdk_session_ends_cleanly(sdk):
    """Closing stdin ends the server at once (nothing it left behind holds the client's
    pipes open) and destroys the sandbox."""
    assert sdk["close_ms"] < 2000
    m = re.search(r"sandbox ([0-9a-f]{16}) created", sdk["server_log"])
    assert m, sdk["server_log"]
    assert f"sandbox {m.group(1)} destroyed" in sdk["server_log"]
    assert not os.path.exists(os.path.join(SOCKETS, m.group(1) + ".sock"))


# ---- raw JSON-RPC -----------------------------------------------------------------


class Server:
    """`warden mcp` with pipes: send() a message (a dict, or raw text), recv() one."""

    def __init__(self, warden, *opts):
        self.p = subprocess.Popen([warden, "mcp", *opts], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.next_id = 0
        self.log = b""

    def send(self, msg):
        line = msg if isinstance(msg, (str, bytes)) else json.dumps(msg)
        if isinstance(line, str):
            line = line.encode()
        self.p.stdin.write(line + b"\n")
        self.p.stdin.flush()

    def recv(self, timeout=30):
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        assert r, "no reply in time"
        line = self.p.stdout.readline()
        assert line.endswith(b"\n"), line
        return json.loads(line)

    def request(self, method, params=None):
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        reply = self.recv()
        assert reply["id"] == self.next_id
        assert reply["jsonrpc"] == "2.0"
        return reply

    def call(self, name, **args):
        return self.request("tools/call", {"name": name, "arguments": args})

    def read_log(self, timeout=5):
        """Read stderr until its next line (the server logs one per sandbox event)."""
        deadline = time.time() + timeout
        while b"\n" not in self.log and time.time() < deadline:
            r, _, _ = select.select([self.p.stderr], [], [], 0.2)
            if r:
                self.log += os.read(self.p.stderr.fileno(), 4096)
        line, _, self.log = self.log.partition(b"\n")
        return line.decode()

    def sandbox_id(self):
        for _ in range(5):
            m = re.search(r"sandbox ([0-9a-f]{16}) created", self.read_log())
            if m:
                return m.group(1)
        pytest.fail("the server did not log its sandbox")

    def close(self, timeout=30):
        self.p.stdin.close()
        rc = self.p.wait(timeout=timeout)
        self.rest = self.p.stdout.read()
        return rc

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


@pytest.fixture
def server(warden):
    s = Server(warden)
    yield s
    s.kill()


INIT = {"protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "pytest", "version": "1"}}


def wait_gone(path, timeout=10):
    deadline = time.time() + timeout
    while os.path.exists(path) and time.time() < deadline:
        time.sleep(0.05)
    return not os.path.exists(path)


def test_initialize(server):
    r = server.request("initialize", INIT)["result"]
    assert r["protocolVersion"] == "2025-06-18"
    assert r["capabilities"] == {"tools": {"listChanged": False}}
    assert r["serverInfo"]["name"] == "warden"
    server.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert server.request("ping")["result"] == {}
    assert server.close() == 0
    assert server.rest == b""  # the notification got no reply


def test_initialize_other_versions(server):
    # One it speaks is echoed; one it does not gets its own, for the client to decide.
    old = dict(INIT, protocolVersion="2025-03-26")
    assert server.request("initialize", old)["result"]["protocolVersion"] == "2025-03-26"
    new = dict(INIT, protocolVersion="2099-01-01")
    assert server.request("initialize", new)["result"]["protocolVersion"] == "2025-06-18"


def test_malformed_json_is_parse_error(server):
    server.send('{"jsonrpc": "2.0", "id": 1, "method": ')
    r = server.recv()
    assert r["id"] is None and r["error"]["code"] == -32700
    server.send(b"\xff\xfe not even text")
    assert server.recv()["error"]["code"] == -32700
    # It goes on serving.
    assert server.request("ping")["result"] == {}


def test_invalid_requests(server):
    for msg in ('[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]',  # batches: not in MCP
                '{"jsonrpc": "1.0", "id": 2, "method": "ping"}',
                '{"id": 3, "method": "ping"}',
                '{"jsonrpc": "2.0", "id": 4, "method": 5}',
                '{"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"}',
                '"just a string"'):
        server.send(msg)
        r = server.recv()
        assert r["error"]["code"] == -32600, msg
    assert server.request("ping")["result"] == {}


def test_unknown_method(server):
    r = server.request("resources/list")
    assert r["error"]["code"] == -32601
    assert "resources/list" in r["error"]["message"]
    server.send({"jsonrpc": "2.0", "id": "text-id", "method": "no/such"})
    r = server.recv()
    assert r["id"] == "text-id" and r["error"]["code"] == -32601


def test_wrong_params(server):
    assert server.request("initialize", {})["error"]["code"] == -32602
    assert server.request("tools/call", {})["error"]["code"] == -32602
    assert server.request("tools/call", [1, 2])["error"]["code"] == -32602
    r = server.request("tools/call", {"name": "read_file", "arguments": "/etc/passwd"})
    assert r["error"]["code"] == -32602
    r = server.request("tools/call", {"name": "nope", "arguments": {}})
    assert r["error"] == {"code": -32602, "message": "Unknown tool: nope"}
    r = server.call("run_command", argv=[])
    assert r["error"]["code"] == -32602 and "argv" in r["error"]["message"]
    r = server.call("run_command", command="true", env={"1BAD": "x"})
    assert r["error"]["code"] == -32602 and "1BAD" in r["error"]["message"]
    r = server.call("write_file", path="/tmp/x", content="x", mode="rwx")
    assert r["error"]["code"] == -32602 and "mode" in r["error"]["message"]
    r = server.call("read_file", path="/tmp/x", max_bytes=0)
    assert r["error"]["code"] == -32602 and "max_bytes" in r["error"]["message"]


def test_tools_list_without_a_sandbox(server, warden):
    """Listing tools makes no sandbox: only a tool call does."""
    r = server.request("tools/list")["result"]
    assert [t["name"] for t in r["tools"]] == [
        "run_command", "write_file", "read_file", "list_files"]
    assert server.close() == 0
    assert b"created" not in server.p.stderr.read()


def test_stdout_carries_only_messages(server):
    server.request("initialize", INIT)
    r = server.call("run_command", command="echo to-stdout; echo to-stderr >&2")
    assert r["result"]["structuredContent"]["stdout"] == "to-stdout\n"
    server.send("not json")
    server.send({"jsonrpc": "2.0", "id": 99, "method": "ping"})
    assert server.close() == 0
    lines = server.rest.decode().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [None, 99]


def test_large_file_round_trip(server):
    content = ("0123456789abcdef" * 64 + "\n") * 2048  # 2 MiB in one message
    r = server.call("write_file", path="/tmp/big.txt", content=content)
    assert r["result"]["structuredContent"]["bytes"] == len(content)
    r = server.call("read_file", path="/tmp/big.txt", max_bytes=8 << 20)
    assert r["result"]["structuredContent"]["content"] == content
    r = server.call("run_command", command="wc -c < /tmp/big.txt")
    assert r["result"]["structuredContent"]["stdout"].strip() == str(len(content))


def test_eof_destroys_the_sandbox(server):
    r = server.call("run_command", command="true")
    assert r["result"]["isError"] is False
    sock = os.path.join(SOCKETS, server.sandbox_id() + ".sock")
    assert os.path.exists(sock)
    assert server.close() == 0
    assert not os.path.exists(sock)


def test_sigterm_destroys_the_sandbox(server):
    server.call("run_command", command="true")
    sock = os.path.join(SOCKETS, server.sandbox_id() + ".sock")
    # Mid-call: a long command is interrupted, the sandbox destroyed.
    server.send({"jsonrpc": "2.0", "id": 50, "method": "tools/call",
                 "params": {"name": "run_command", "arguments": {"command": "sleep 60"}}})
    time.sleep(0.5)
    server.p.send_signal(signal.SIGTERM)
    assert server.p.wait(timeout=20) == 0
    assert not os.path.exists(sock)


def test_sigkill_watchdog_destroys_the_sandbox(server):
    server.call("run_command", command="true")
    sock = os.path.join(SOCKETS, server.sandbox_id() + ".sock")
    server.p.kill()
    server.p.wait()
    assert wait_gone(sock), "the watchdog did not destroy the sandbox"


def test_sandbox_ttl_ends_the_session_sandbox(warden):
    s = Server(warden, "--timeout", "2")
    try:
        r = s.call("run_command", command="echo up")
        assert r["result"]["structuredContent"]["stdout"] == "up\n"
        sock = os.path.join(SOCKETS, s.sandbox_id() + ".sock")
        assert wait_gone(sock, timeout=15)
        r = s.call("run_command", command="echo again")["result"]
        assert r["isError"] is True and "ended" in r["content"][0]["text"]
        r = s.call("read_file", path="/etc/hostname")["result"]
        assert r["isError"] is True
        assert s.close() == 0
    finally:
        s.kill()


def test_bad_policy_is_a_tool_error(warden, tmp_path):
    s = Server(warden, "--policy", str(tmp_path / "missing.yaml"))
    try:
        s.request("initialize", INIT)
        r = s.call("run_command", command="true")["result"]
        assert r["isError"] is True
        assert "could not create the sandbox" in r["content"][0]["text"]
        assert "missing.yaml" in r["content"][0]["text"]
        assert s.close() == 0
    finally:
        s.kill()


def test_options(warden):
    r = subprocess.run([warden, "mcp", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "usage: warden mcp" in r.stdout
    r = subprocess.run([warden, "mcp", "--bogus"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 125 and "--bogus" in r.stderr
    r = subprocess.run([warden, "mcp", "extra"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 125
    # EOF at once: nothing to do, no sandbox, exit 0.
    r = subprocess.run([warden, "mcp"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=10)
    assert r.returncode == 0 and r.stdout == ""


def test_rootless_session(rootless_runner, warden):
    """Rootless, commands and the file tools work: the sandbox's root comes from its
    supervisor (the kernel refuses an unprivileged user /proc/INIT/root of the
    non-dumpable init), and the files are the caller's own, so no identity is switched."""
    msgs = [{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
             "params": {"name": "run_command",
                        "arguments": {"command": "echo hi > /tmp/f; id -un"}}},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
             "params": {"name": "read_file", "arguments": {"path": "/tmp/f"}}},
            {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
             "params": {"name": "write_file",
                        "arguments": {"path": "/tmp/d/g", "content": "from mcp\n"}}},
            {"jsonrpc": "2.0", "id": 4, "method": "tools/call",
             "params": {"name": "run_command",
                        "arguments": {"command": "cat /tmp/d/g; stat -c %U /tmp/d/g"}}},
            {"jsonrpc": "2.0", "id": 5, "method": "tools/call",
             "params": {"name": "list_files", "arguments": {"path": "/tmp"}}}]
    r = rootless_runner.run([warden, "mcp", "-q"],
                            input="".join(json.dumps(m) + "\n" for m in msgs), timeout=60)
    assert r.returncode == 0, r.stderr
    replies = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["id"] for x in replies] == [1, 2, 3, 4, 5]
    for x in replies:
        assert not x["result"]["isError"], x
    assert replies[0]["result"]["structuredContent"]["stdout"] == "agent\n"
    assert replies[1]["result"]["structuredContent"]["content"] == "hi\n"
    assert replies[2]["result"]["structuredContent"]["bytes"] == 9
    assert replies[3]["result"]["structuredContent"]["stdout"] == "from mcp\nagent\n"
    names = {e["name"] for e in replies[4]["result"]["structuredContent"]["entries"]}
    assert {"f", "d"} <= names
