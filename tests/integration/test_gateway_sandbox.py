"""The model gateway inside real sandboxes (`warden run --gateway FILE`): an agent calls
the OpenAI and Anthropic APIs with what warden gives it (base URLs, a per-sandbox token),
the gateway swaps the token for the real key, and the real key is nowhere inside: not in
the environment, files, /proc, or the memory of any process of the sandbox. Each scan is
first shown to find a canary that the sandbox does hold."""
import json
import os
import secrets
import subprocess
import textwrap
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAKE = os.path.join(ROOT, "tests", "net", "fake_provider.py")

OAI_KEY = "sk-fake-openai-" + secrets.token_hex(12)
ANT_KEY = "sk-ant-fake-" + secrets.token_hex(12)

CONFIG = """\
version: 1
providers:
  oai:
    type: openai
    base_url: http://127.0.0.1:{port}/v1
    api_key_env: GW_TEST_OAI_KEY
  ant:
    type: anthropic
    base_url: http://127.0.0.1:{port}
    api_key_file: {keyfile}
models:
  mini: {{provider: oai, upstream: fake-mini-2024, input_price: 0.15, output_price: 0.6}}
  claude: {{provider: ant, input_price: 3, output_price: 15}}
policies:
  gwtest:
    models: [mini, claude]
    budget: {{requests: 100}}
"""

AGENT = textwrap.dedent("""
    import json, os, sys, urllib.error, urllib.request

    def post(url, body, headers):
        req = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"content-type": "application/json", **headers})
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    oai, ant = os.environ["OPENAI_BASE_URL"], os.environ["ANTHROPIC_BASE_URL"]
    auth = {"authorization": "Bearer " + os.environ["OPENAI_API_KEY"]}
    out = {"token": os.environ["OPENAI_API_KEY"],
           "same_token": os.environ["ANTHROPIC_API_KEY"] == os.environ["OPENAI_API_KEY"],
           "base": [oai, ant]}
    chat = {"model": "mini", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 20, "fake": {"echo_auth": True}}
    out["chat"] = post(oai + "/chat/completions", chat, auth)
    out["stream"] = post(oai + "/chat/completions", dict(chat, stream=True), auth)
    out["messages"] = post(ant + "/v1/messages",
                           {"model": "claude", "max_tokens": 20,
                            "messages": [{"role": "user", "content": "hi"}]},
                           {"x-api-key": os.environ["ANTHROPIC_API_KEY"],
                            "anthropic-version": "2023-06-01"})
    out["not_allowed"] = post(oai + "/chat/completions", dict(chat, model="gpt-x"), auth)
    out["bad_token"] = post(oai + "/chat/completions", chat,
                            {"authorization": "Bearer wdn-" + "0" * 48})
    with open("/tmp/canary.txt", "w") as f:
        f.write(os.environ["CANARY"])
    print(json.dumps(out), flush=True)
    sys.stdin.readline()  # the host scans the sandbox now
""")


@pytest.fixture(scope="module")
def provider():
    p = subprocess.Popen(["/usr/bin/python3", FAKE], stdout=subprocess.PIPE, text=True)
    port = json.loads(p.stdout.readline())["port"]
    yield port
    p.kill()
    p.wait()


@pytest.fixture
def setup(shared_tmp, provider, test_user):
    keyfile = os.path.join(shared_tmp, "anthropic.key")
    with open(os.open(keyfile, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(ANT_KEY + "\n")
    # The rootless runner reads it as the test user, as a user's own key file would be.
    os.chown(keyfile, test_user.pw_uid, test_user.pw_gid)
    config = os.path.join(shared_tmp, "gateway.yaml")
    with open(config, "w") as f:
        f.write(CONFIG.format(port=provider, keyfile=keyfile))
    os.chmod(config, 0o644)
    policy = os.path.join(shared_tmp, "gwtest.yaml")
    with open(policy, "w") as f:
        f.write("name: gwtest\n")
    os.chmod(policy, 0o644)
    return {"tmp": shared_tmp, "config": config, "policy": policy, "port": provider}


def warden_argv(warden, s, *opts):
    return [warden, "run", "-q", "--policy", s["policy"], "--gateway", s["config"],
            "--audit-log", os.path.join(s["tmp"], "audit.log"), "--audit-key",
            os.path.join(s["tmp"], "audit.key"), *opts]


# ---- scanning a live sandbox from the host -------------------------------------------------


def pid_ns(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def sandbox_pids(agent_pid):
    ns = pid_ns(agent_pid)
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and pid_ns(p) == ns]


def read_memory(pid):
    """Every readable mapping of a process, concatenated."""
    chunks = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] == "[vvar]"):
                continue
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(lo)
                chunks.append(mem.read(hi - lo))
            except (OSError, OverflowError):
                pass
    return b"".join(chunks)


def sandbox_files(root):
    """The contents of the sandbox's own files: its /etc, home, temporary directories and
    /run (the host's read-only system directories are the host's)."""
    for top in ("etc", "tmp", "var", "home", "run", "root", "dev/shm"):
        for d, _, names in os.walk(os.path.join(root, top)):
            for n in names:
                path = os.path.join(d, n)
                try:
                    if os.path.isfile(path) and not os.path.islink(path):
                        with open(path, "rb") as f:
                            yield path, f.read(4 << 20)
                except OSError:
                    pass


def scan(agent_pid, needles):
    """Where each needle appears: environ, cmdline, files, memory."""
    found = {n: set() for n in needles}
    for pid in sandbox_pids(agent_pid):
        for part in ("environ", "cmdline"):
            with open(f"/proc/{pid}/{part}", "rb") as f:
                data = f.read()
            for n in needles:
                if n.encode() in data:
                    found[n].add(part)
        mem = read_memory(pid)
        for n in needles:
            if n.encode() in mem:
                found[n].add("memory")
    for _, data in sandbox_files(f"/proc/{agent_pid}/root"):
        for n in needles:
            if n.encode() in data:
                found[n].add("files")
    return found


def agent_pid_of(marker):
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"python3") and marker.encode() in argv[-2]:
            return int(p)
    raise AssertionError("agent process not found")


def test_agent_uses_the_gateway_and_never_holds_the_key(runner, warden, setup):
    canary = "canary-" + secrets.token_hex(12)
    events = os.path.join(setup["tmp"], "events.jsonl")
    argv = warden_argv(warden, setup, "--events", events, "-e", f"CANARY={canary}", "--",
                       "python3", "-c", AGENT, canary)
    proc = subprocess.Popen(runner.prefix() + argv, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=runner.env({"GW_TEST_OAI_KEY": OAI_KEY}))
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        out = json.loads(line)
        found = scan(agent_pid_of(canary), [canary, OAI_KEY, ANT_KEY])
        host_side = read_memory(proc.pid)  # the supervisor (setpriv execs warden)
    finally:
        proc.stdin.write("\n")
        proc.stdin.close()
        assert proc.wait(30) == 0, proc.stderr.read()

    # The scans work: the canary the sandbox does hold is found by every channel...
    assert found[canary] == {"environ", "cmdline", "files", "memory"}, found
    # ...and the real keys, which the supervisor holds on the host, are not inside.
    assert OAI_KEY.encode() in host_side and ANT_KEY.encode() in host_side
    assert found[OAI_KEY] == set() and found[ANT_KEY] == set(), found

    assert out["token"].startswith("wdn-") and len(out["token"]) == 52 and out["same_token"]
    assert out["base"] == ["http://127.0.0.1:4141/v1", "http://127.0.0.1:4141"]
    status, body = out["chat"]
    assert status == 200, body
    assert json.loads(body)["choices"][0]["message"]["content"]
    assert OAI_KEY not in body and "[redacted]" in body  # echo_auth: what arrived upstream
    status, body = out["stream"]
    assert status == 200 and "data: [DONE]" in body, body
    assert out["messages"][0] == 200, out["messages"]
    status, body = out["not_allowed"]
    assert status == 403 and "gpt-x" in json.loads(body)["error"]["message"]
    assert out["bad_token"][0] == 401

    # Upstream got the real keys and the upstream model name.
    with urllib.request.urlopen(f"http://127.0.0.1:{setup['port']}/_log") as r:
        log = json.loads(r.read())
    auths = [req["headers"].get("Authorization") or req["headers"].get("authorization")
             for req in log if req["path"].endswith("/chat/completions")]
    assert f"Bearer {OAI_KEY}" in auths
    assert any((req["headers"].get("x-api-key") or req["headers"].get("X-Api-Key")) == ANT_KEY
               for req in log if req["path"].endswith("/messages"))

    with open(events) as f:
        calls = [e for e in map(json.loads, f) if e["kind"] == "model.call"]
    assert [c["status"] for c in calls] == [200, 200, 200, 403, 401], calls
    assert calls[0]["model"] == "mini" and calls[0]["input_tokens"] > 0
    assert calls[0]["output_tokens"] > 0 and calls[0]["cost_usd"] > 0
    assert calls[1]["streamed"] and calls[2]["api"] == "anthropic.messages"
    assert "model not allowed" in calls[3]["refused"]
    assert "request" not in calls[0]  # prompts are not logged unless the policy asks
    with open(os.path.join(setup["tmp"], "audit.log")) as f:
        recs = [r for r in map(json.loads, f) if r["kind"] == "model.call"]
    assert len(recs) == 5 and all(r["sandbox"] == calls[0]["sandbox"] for r in recs)
    for where in (events, os.path.join(setup["tmp"], "audit.log")):
        with open(where) as f:
            text = f.read()
        assert OAI_KEY not in text and ANT_KEY not in text


def test_each_sandbox_has_its_own_token(root_runner, warden, setup):
    cmd = ["sh", "-c", 'echo "$OPENAI_API_KEY"']
    a = root_runner.run(warden_argv(warden, setup, "--", *cmd),
                        env={"GW_TEST_OAI_KEY": OAI_KEY})
    b = root_runner.run(warden_argv(warden, setup, "--", *cmd),
                        env={"GW_TEST_OAI_KEY": OAI_KEY})
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert a.stdout.startswith("wdn-") and a.stdout != b.stdout


def test_no_gateway_without_a_configuration(root_runner, warden, setup):
    r = root_runner.run([warden, "run", "-q", "--policy", setup["policy"], "--", "sh", "-c",
                         'echo "[$OPENAI_BASE_URL][$OPENAI_API_KEY]"'])
    assert r.returncode == 0 and r.stdout == "[][]\n", r.stderr
    with_env = {"WARDEN_GATEWAY": setup["config"], "GW_TEST_OAI_KEY": OAI_KEY}
    cmd = ["sh", "-c", 'echo "[$OPENAI_BASE_URL]"']
    r = root_runner.run([warden, "run", "-q", "--policy", setup["policy"], "--", *cmd],
                        env=with_env)
    assert r.stdout == "[http://127.0.0.1:4141/v1]\n", r.stderr
    r = root_runner.run([warden, "run", "-q", "--policy", setup["policy"], "--no-gateway",
                         "--", *cmd], env=with_env)
    assert r.returncode == 0 and r.stdout == "[]\n", r.stderr


@pytest.mark.parametrize("opts,env,message", [
    (["--network", "host"], {"GW_TEST_OAI_KEY": OAI_KEY}, "needs network mode none or proxy"),
    (["--policy", "default"], {"GW_TEST_OAI_KEY": OAI_KEY},
     'no section for policy "default"'),
    ([], {}, "GW_TEST_OAI_KEY"),
    (["--no-gateway"], {"GW_TEST_OAI_KEY": OAI_KEY}, "choose one"),
    # passing the real key in by mistake, by name or by value
    (["-e", "GW_TEST_OAI_KEY"], {"GW_TEST_OAI_KEY": OAI_KEY},
     "would hold the API key of provider oai (in GW_TEST_OAI_KEY)"),
    (["-e", f"MY_KEY={ANT_KEY}"], {"GW_TEST_OAI_KEY": OAI_KEY},
     "would hold the API key of provider ant (in MY_KEY)"),
])
def test_configuration_errors_stop_the_run(root_runner, warden, setup, opts, env, message):
    r = root_runner.run(warden_argv(warden, setup, *opts, "--", "true"), env=env)
    assert r.returncode == 125, r.stderr
    assert message in r.stderr, r.stderr


def test_gateway_yaml_errors_name_the_place(root_runner, warden, setup):
    bad = os.path.join(setup["tmp"], "bad.yaml")
    with open(bad, "w") as f:
        f.write("version: 1\nproviders:\n  oai:\n    type: openai\n    base_url: ftp://x\n")
    r = root_runner.run([warden, "run", "--gateway", bad, "--", "true"])
    assert r.returncode == 125
    assert f"{bad}:5:" in r.stderr and "base_url" in r.stderr, r.stderr
