"""The model gateway (src/lib/net/gateway*.c) served by tests/net/gatewayd, in front of a
fake provider (tests/net/fake_provider.py), driven by real clients: urllib, http.client
(to read streams as they arrive) and curl. Covered: every endpoint, streamed answers
relayed chunk by chunk, the allowlist, budgets (also raced by 20 concurrent calls), rate
limits, provider errors, timeouts and refused connections, TLS with a private CA, the
real key kept from the sandbox (and delivered upstream), log_content."""
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("WARDEN_BUILD", os.path.join(ROOT, "build"))
GATEWAYD = os.path.join(BUILD, "tests", "gatewayd")
FAKE = os.path.join(ROOT, "tests", "net", "fake_provider.py")
PY = "/usr/bin/python3"

OAI_KEY = "sk-fake-openai-7f3a9c2e41d85b6f0a1c"
ANT_KEY = "sk-ant-fake-93be07d4c2a1f5e86b3d"
TOKEN = "wdn-" + "5a" * 24


# ---- fixtures ------------------------------------------------------------------------------


def start_fake(*args):
    p = subprocess.Popen([PY, FAKE, *args], stdout=subprocess.PIPE, text=True)
    port = json.loads(p.stdout.readline())["port"]
    return p, port


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_cert(d, name, san, ca="ca"):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", "/CN=fake", cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName={san}\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext",
            cwd=d)
    return os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


CONFIG = """\
version: 1
providers:
  fake-oai:
    type: openai
    base_url: http://127.0.0.1:{port}/v1
    api_key_env: FAKE_OAI_KEY
    timeout: 3s
  fake-ant:
    type: anthropic
    base_url: http://127.0.0.1:{port}
    api_key_file: {keyfile}
    timeout: 3s
  slow:
    type: openai
    base_url: http://127.0.0.1:{port}/v1
    api_key_env: FAKE_OAI_KEY
    timeout: 1s
  dead:
    type: openai
    base_url: http://127.0.0.1:{dead}/v1
    api_key_env: FAKE_OAI_KEY
  tls-good:
    type: openai
    base_url: https://127.0.0.1:{tls_good}/v1
    api_key_env: FAKE_OAI_KEY
    ca_file: {ca}
  tls-bad:
    type: openai
    base_url: https://127.0.0.1:{tls_bad}/v1
    api_key_env: FAKE_OAI_KEY
    ca_file: {ca}
models:
  mini: {{provider: fake-oai, upstream: fake-mini-2024, input_price: 0.15, output_price: 0.6}}
  embed: {{provider: fake-oai, input_price: 0.02, output_price: 0}}
  claude: {{provider: fake-ant, upstream: claude-fake-1, input_price: 3, output_price: 15,
           max_output_tokens: 1024}}
  slow-model: {{provider: slow, input_price: 1, output_price: 1}}
  dead-model: {{provider: dead, input_price: 1, output_price: 1}}
  tls-model: {{provider: tls-good, input_price: 1, output_price: 1}}
  tls-bad-model: {{provider: tls-bad, input_price: 1, output_price: 1}}
policies:
  open:
    models: [mini, embed, claude, slow-model, dead-model, tls-model, tls-bad-model]
  logged:
    models: [mini, claude]
    log_content: true
  tight:
    models: [mini]
    budget: {{output_tokens: 100}}
  race:
    models: [mini]
    budget: {{requests: 1000, output_tokens: 1000, cost_usd: 1}}
  rate:
    models: [mini]
    rate_limit: {{requests_per_min: 2}}
  "*":
    models: [mini]
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if not os.path.exists(GATEWAYD):
        pytest.fail(f"{GATEWAYD} is missing: run `ninja -C build` first")
    d = str(tmp_path_factory.mktemp("gateway"))
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=fake-ca", "-days", "2",
            cwd=d)
    good = make_cert(d, "good", "IP:127.0.0.1")
    bad = make_cert(d, "bad", "DNS:wrong.example")
    procs = []
    fake, port = start_fake()
    tls_good, tls_good_port = start_fake("--cert", good[0], "--key", good[1])
    tls_bad, tls_bad_port = start_fake("--cert", bad[0], "--key", bad[1])
    procs += [fake, tls_good, tls_bad]
    keyfile = os.path.join(d, "anthropic.key")
    with open(os.open(keyfile, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(ANT_KEY + "\n")
    config = os.path.join(d, "gateway.yaml")
    with open(config, "w") as f:
        f.write(CONFIG.format(port=port, keyfile=keyfile, dead=closed_port(),
                              tls_good=tls_good_port, tls_bad=tls_bad_port,
                              ca=os.path.join(d, "ca.pem")))
    yield {"config": config, "fake": port}
    for p in procs:
        p.kill()
        p.wait()


class Gateway:
    """gatewayd for one policy; its output lines are collected as they come."""

    def __init__(self, env, policy):
        self.env = env
        self.proc = subprocess.Popen(
            [GATEWAYD, "--config", env["config"], "--policy", policy, "--token", TOKEN],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={"FAKE_OAI_KEY": OAI_KEY, "PATH": os.environ.get("PATH", "/usr/bin")})
        ready = self.proc.stdout.readline()
        if not ready:
            pytest.fail("gatewayd: " + self.proc.stderr.read())
        self.port = json.loads(ready)["port"]
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(json.loads(line))
                self.cond.notify_all()

    def calls(self, n, timeout=10):
        """The first n calls reported (waiting for them)."""
        with self.cond:
            ok = self.cond.wait_for(
                lambda: len([x for x in self.lines if x["event"] == "call"]) >= n, timeout)
            assert ok, f"expected {n} calls, got {self.lines}"
            return [x for x in self.lines if x["event"] == "call"][:n]

    def stop(self):
        """SIGTERM; returns the usage line."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(10) == 0
        with self.cond:
            self.cond.wait_for(lambda: any(x["event"] == "usage" for x in self.lines), 5)
            return next(x for x in self.lines if x["event"] == "usage")


@pytest.fixture
def gateway(env):
    started = []

    def start(policy="open"):
        gw = Gateway(env, policy)
        started.append(gw)
        return gw
    yield start
    for gw in started:
        if gw.proc.poll() is None:
            gw.proc.kill()
        gw.proc.wait()


def fake_log(env):
    with urllib.request.urlopen(f"http://127.0.0.1:{env['fake']}/_log") as r:
        return json.load(r)


def fake_release(env, name):
    urllib.request.urlopen(f"http://127.0.0.1:{env['fake']}/_release/{name}").read()


def call(gw, path, body=None, method=None, token=TOKEN, anthropic=False, headers=None):
    """One request through urllib: (status, headers, raw body)."""
    h = {"Content-Type": "application/json"}
    if token is not None:
        h.update({"x-api-key": token, "anthropic-version": "2023-06-01"} if anthropic
                 else {"Authorization": f"Bearer {token}"})
    h.update(headers or {})
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{gw.port}{path}", data=data, headers=h,
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def chat(model="mini", **kw):
    return {"model": model, "messages": [{"role": "user", "content": "Say hi."}], **kw}


def messages(model="claude", **kw):
    return {"model": model, "max_tokens": 64,
            "messages": [{"role": "user", "content": "Say hi."}], **kw}


ENDPOINTS = {
    "openai.chat": ("/v1/chat/completions", lambda **kw: chat(**kw)),
    "openai.responses": ("/v1/responses", lambda **kw: {"model": "mini", "input": "hi", **kw}),
    "openai.embeddings": ("/v1/embeddings", lambda **kw: {"model": "embed", "input": "hi",
                                                          **kw}),
    "anthropic.messages": ("/v1/messages", lambda **kw: messages(**kw)),
}


def openai_error(raw):
    e = json.loads(raw)["error"]
    assert set(e) == {"message", "type", "param", "code"}
    return e


def anthropic_error(raw):
    body = json.loads(raw)
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    return body["error"]


# ---- endpoints ---------------------------------------------------------------------------


@pytest.mark.parametrize("api", sorted(ENDPOINTS))
def test_endpoint_answers_and_settles_from_usage(env, gateway, api):
    gw = gateway()
    path, make = ENDPOINTS[api]
    body = make(fake={"usage": {"input": 21, "output": 7}})
    status, headers, raw = call(gw, path, body, anthropic=api.startswith("anthropic"))
    assert status == 200, raw
    answer = json.loads(raw)
    assert answer["usage"]
    assert headers["x-request-id"] == "req_fake"
    (c,) = gw.calls(1)
    output = 0 if api == "openai.embeddings" else 7
    assert (c["api"], c["status"], c["refused"], c["error"]) == (api, 200, None, None)
    assert (c["input_tokens"], c["output_tokens"], c["usage_reported"]) == (21, output, True)
    assert c["first_byte_us"] <= c["latency_us"]
    usage = gw.stop()
    assert (usage["requests"], usage["input_tokens"], usage["output_tokens"]) == (1, 21, output)
    assert usage["reserved_input_tokens"] == usage["reserved_output_tokens"] == 0


def test_models_answered_from_the_allowlist(env, gateway):
    gw = gateway("logged")
    status, _, raw = call(gw, "/v1/models", method="GET")
    assert status == 200
    listing = json.loads(raw)
    assert [m["id"] for m in listing["data"]] == ["mini", "claude"]
    assert listing["object"] == "list" and listing["has_more"] is False
    status, _, raw = call(gw, "/v1/models/claude", method="GET", anthropic=True)
    assert status == 200 and json.loads(raw)["id"] == "claude"
    status, _, raw = call(gw, "/v1/models/embed", method="GET", anthropic=True)
    assert status == 404 and anthropic_error(raw)["type"] == "not_found_error"
    assert [c["api"] for c in gw.calls(3)] == ["openai.models"] * 3
    assert fake_log(env) == [] or all("/models" not in r["path"] for r in fake_log(env))


def test_upstream_model_name_and_real_key_arrive_upstream(env, gateway):
    gw = gateway()
    call(gw, "/v1/chat/completions", chat(user="tag-chat"))
    call(gw, "/v1/messages", messages(metadata={"user_id": "tag-msg"}), anthropic=True,
         headers={"anthropic-beta": "tools-1"})
    log = fake_log(env)
    up = next(r for r in log if (r["body"] or {}).get("user") == "tag-chat")
    assert up["path"] == "/v1/chat/completions"
    assert up["body"]["model"] == "fake-mini-2024"
    assert up["headers"]["Authorization"] == f"Bearer {OAI_KEY}"
    assert "x-api-key" not in up["headers"]
    up = next(r for r in log if (r["body"] or {}).get("metadata") == {"user_id": "tag-msg"})
    assert up["path"] == "/v1/messages"
    assert up["body"]["model"] == "claude-fake-1"
    assert up["headers"]["x-api-key"] == ANT_KEY
    assert up["headers"]["anthropic-version"] == "2023-06-01"
    assert up["headers"]["anthropic-beta"] == "tools-1"
    for r in log:
        assert TOKEN not in json.dumps(r)


# ---- streaming ---------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["openai.chat", "openai.responses", "anthropic.messages"])
def test_stream_is_relayed_chunk_by_chunk(env, gateway, api):
    """The provider holds its answer after the first delta until the test has read that
    delta through the gateway: a gateway that buffered the stream would never deliver it."""
    gw = gateway()
    path, make = ENDPOINTS[api]
    name = f"gate-{api}"
    body = make(stream=True, fake={"gate": name, "usage": {"input": 30, "output": 12}})
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    headers = ({"x-api-key": TOKEN, "anthropic-version": "2023-06-01"}
               if api.startswith("anthropic") else {"Authorization": f"Bearer {TOKEN}"})
    conn.request("POST", path, json.dumps(body), {**headers, "Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/event-stream"
    first = b""
    while b"part0" not in first:
        line = resp.readline()
        assert line, "the stream ended before its first delta"
        first += line
    assert b"part1" not in first
    fake_release(env, name)
    rest = resp.read()
    conn.close()
    assert b"part1" in rest and b"part2" in rest
    (c,) = gw.calls(1)
    assert c["streamed"] and c["status"] == 200 and c["error"] is None
    assert (c["input_tokens"], c["output_tokens"], c["usage_reported"]) == (30, 12, True)


def test_chat_stream_asks_for_usage(env, gateway):
    gw = gateway()
    status, _, raw = call(gw, "/v1/chat/completions",
                          chat(stream=True, user="tag-usage", stream_options={"x": 1}))
    assert status == 200 and raw.endswith(b"data: [DONE]\n\n")
    up = next(r for r in fake_log(env) if (r["body"] or {}).get("user") == "tag-usage")
    assert up["body"]["stream_options"] == {"x": 1, "include_usage": True}
    (c,) = gw.calls(1)
    assert c["usage_reported"]


def test_curl_streams_and_posts(env, gateway):
    gw = gateway()
    out = subprocess.run(
        ["curl", "-sS", "-N", "--fail-with-body", f"http://127.0.0.1:{gw.port}/v1/chat/completions",
         "-H", f"Authorization: Bearer {TOKEN}", "-H", "Content-Type: application/json",
         "-d", json.dumps(chat(stream=True, fake={"chunks": 5, "delay": 0.05}))],
        capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    events = [line for line in out.stdout.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    text = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content", "")
                   for e in events[:-1] if json.loads(e[6:])["choices"])
    assert text == "part0 part1 part2 part3 part4 "
    out = subprocess.run(
        ["curl", "-sS", f"http://127.0.0.1:{gw.port}/v1/messages", "-H", f"x-api-key: {TOKEN}",
         "-H", "anthropic-version: 2023-06-01", "-H", "content-type: application/json",
         "-d", json.dumps(messages())],
        capture_output=True, text=True, timeout=30)
    assert json.loads(out.stdout)["content"][0]["text"].startswith("part0")


def test_stream_cut_by_provider_is_cut_for_the_client(env, gateway):
    gw = gateway()
    out = subprocess.run(
        ["curl", "-sS", "-N", f"http://127.0.0.1:{gw.port}/v1/chat/completions",
         "-H", f"Authorization: Bearer {TOKEN}", "-H", "Content-Type: application/json",
         "-d", json.dumps(chat(stream=True, max_tokens=50, fake={"cut": True}))],
        capture_output=True, text=True, timeout=30)
    assert out.returncode == 18, out  # CURLE_PARTIAL_FILE: the transfer ended early
    assert "part0" in out.stdout
    (c,) = gw.calls(1)
    assert c["error"] == "provider fake-oai: the connection closed mid-answer"
    assert not c["usage_reported"]
    usage = gw.stop()
    assert usage["output_tokens"] == 50  # no usage came: the reservation stays charged


# ---- refusals ----------------------------------------------------------------------------


def test_bad_or_missing_token(env, gateway):
    gw = gateway()
    status, _, raw = call(gw, "/v1/chat/completions", chat(), token="wdn-" + "00" * 24)
    assert status == 401
    assert openai_error(raw)["code"] == "invalid_api_key"
    status, _, raw = call(gw, "/v1/messages", messages(), token=None)
    assert status == 401
    assert anthropic_error(raw)["type"] == "authentication_error"
    status, _, raw = call(gw, "/v1/chat/completions", chat(), token=OAI_KEY)
    assert status == 401
    calls = gw.calls(3)
    assert all(c["refused"].startswith("bad token") for c in calls)
    assert fake_log(env) == [] or not any(r["path"] == "/v1/messages" and
                                          r["body"] == messages() for r in fake_log(env))


def test_model_not_allowed(env, gateway):
    gw = gateway("logged")
    status, _, raw = call(gw, "/v1/chat/completions", chat(model="embed"))
    assert status == 403
    e = openai_error(raw)
    assert e["code"] == "model_not_allowed" and "embed" in e["message"]
    status, _, raw = call(gw, "/v1/messages", messages(model="gpt-5"), anthropic=True)
    assert status == 403 and anthropic_error(raw)["type"] == "permission_error"
    status, _, raw = call(gw, "/v1/messages", messages(model="mini"), anthropic=True)
    assert status == 400 and "OpenAI API" in anthropic_error(raw)["message"]
    assert [c["refused"] for c in gw.calls(3)][:2] == ["model not allowed: embed",
                                                       "model not allowed: gpt-5"]


def test_bad_requests(env, gateway):
    gw = gateway()
    status, _, raw = call(gw, "/v1/chat/completions", {"messages": []})
    assert status == 400 and openai_error(raw)["message"] == "\"model\" is missing"
    status, _, raw = call(gw, "/v1/chat/completions", chat(max_tokens="lots"))
    assert status == 400
    status, _, raw = call(gw, "/v1/completions", chat())
    assert status == 404
    status, _, raw = call(gw, "/v1/chat/completions", method="GET")
    assert status == 405
    calls = gw.calls(4)
    assert [c["status"] for c in calls] == [400, 400, 404, 405]
    assert calls[2]["api"] is None


def test_budget_exhausted_is_403(env, gateway):
    gw = gateway("tight")
    status, _, _ = call(gw, "/v1/chat/completions",
                        chat(max_tokens=60, fake={"usage": {"input": 5, "output": 60}}))
    assert status == 200
    status, headers, raw = call(gw, "/v1/chat/completions", chat(max_tokens=60))
    assert status == 403
    e = openai_error(raw)
    assert e["type"] == "insufficient_quota"
    assert e["message"] == "budget: output_tokens exhausted (this call may use 60, 40 left)"
    status, _, _ = call(gw, "/v1/chat/completions",
                        chat(max_tokens=40, fake={"usage": {"input": 5, "output": 40}}))
    assert status == 200
    usage = gw.stop()
    assert usage["output_tokens"] == 100 and usage["max_output_tokens"] == 100


def test_concurrent_calls_never_overspend(env, gateway):
    """20 calls at once, each reserving 100 of a 1000 output-token budget and held by the
    provider for a second: exactly 10 fit, the others are told to retry (429), and what is
    settled stays within the budget."""
    gw = gateway("race")
    results = []
    lock = threading.Lock()

    def one(i):
        r = call(gw, "/v1/chat/completions",
                 chat(max_tokens=100, user=f"race-{i}",
                      fake={"sleep": 1, "usage": {"input": 10, "output": 100}}))
        with lock:
            results.append(r)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r[0] for r in results)
    assert statuses == [200] * 10 + [429] * 10
    for status, headers, raw in results:
        if status == 429:
            assert headers["Retry-After"] == "1"
            assert openai_error(raw)["message"].startswith(
                "budget: output_tokens held by calls in flight")
    calls = gw.calls(20)
    assert sum(c["output_tokens"] for c in calls) == 1000
    assert sum(c["cost_usd"] for c in calls) <= 1
    status, _, raw = call(gw, "/v1/chat/completions", chat(max_tokens=1))
    assert status == 403
    usage = gw.stop()
    assert usage["output_tokens"] == 1000 <= usage["max_output_tokens"]
    assert usage["reserved_output_tokens"] == 0
    assert usage["requests"] == 10


def test_rate_limit_is_429_with_retry_after(env, gateway):
    gw = gateway("rate")
    assert call(gw, "/v1/chat/completions", chat())[0] == 200
    assert call(gw, "/v1/chat/completions", chat())[0] == 200
    status, headers, raw = call(gw, "/v1/chat/completions", chat())
    assert status == 429
    assert 1 <= int(headers["Retry-After"]) <= 30
    e = openai_error(raw)
    assert (e["type"], e["code"]) == ("rate_limit_exceeded", "rate_limit_exceeded")
    assert gw.calls(3)[2]["refused"] == "rate limit: requests_per_min (2)"


# ---- upstream failures -------------------------------------------------------------------


def test_provider_error_passes_through(env, gateway):
    gw = gateway()
    status, _, raw = call(gw, "/v1/chat/completions", chat(fake={"status": 500}))
    assert status == 500
    assert json.loads(raw) == {"error": {"message": "fake failure", "type": "server_error",
                                         "code": None}}
    status, _, raw = call(gw, "/v1/messages", messages(fake={"status": 529}), anthropic=True)
    assert status == 529 and anthropic_error(raw)["message"] == "fake failure"
    c = gw.calls(2)
    assert [(x["status"], x["error"]) for x in c] == [(500, "provider fake-oai: status 500"),
                                                      (529, "provider fake-ant: status 529")]
    assert not c[0]["usage_reported"]


def test_provider_timeout_is_504(env, gateway):
    gw = gateway()
    start = time.monotonic()
    status, _, raw = call(gw, "/v1/chat/completions", chat(model="slow-model",
                                                           fake={"sleep": 4}))
    assert status == 504
    assert time.monotonic() - start < 3.5
    assert openai_error(raw)["code"] == "upstream_timeout"
    (c,) = gw.calls(1)
    assert c["error"] == "provider slow: no data for 1s (timeout)"
    status, _, raw = call(gw, "/v1/messages", messages(model="slow-model"), anthropic=True)
    assert status == 400  # an OpenAI model on the Anthropic API


def test_connection_refused_is_502(env, gateway):
    gw = gateway()
    status, _, raw = call(gw, "/v1/chat/completions", chat(model="dead-model"))
    assert status == 502
    e = openai_error(raw)
    assert e["type"] == "api_error" and "cannot connect to 127.0.0.1:" in e["message"]
    (c,) = gw.calls(1)
    assert c["error"].startswith("provider dead: cannot connect")


def test_tls_with_private_ca(env, gateway):
    gw = gateway()
    status, _, raw = call(gw, "/v1/chat/completions", chat(model="tls-model"))
    assert status == 200, raw
    status, _, raw = call(gw, "/v1/chat/completions", chat(model="tls-bad-model"))
    assert status == 502
    assert "TLS" in openai_error(raw)["message"]
    c = gw.calls(2)
    assert c[1]["error"].startswith("provider tls-bad: TLS with 127.0.0.1:")


# ---- the key and the content -------------------------------------------------------------


def test_real_key_never_reaches_the_sandbox(env, gateway):
    gw = gateway()
    seen = []
    for api, (path, make) in sorted(ENDPOINTS.items()):
        anth = api.startswith("anthropic")
        for body in (make(fake={"echo_auth": True}),
                     make(fake={"echo_auth": True, "status": 401})):
            status, headers, raw = call(gw, path, body, anthropic=anth)
            seen.append((status, str(headers), raw))
        if api != "openai.embeddings":
            status, headers, raw = call(gw, path, make(stream=True,
                                                       fake={"echo_auth": True}),
                                        anthropic=anth)
            seen.append((status, str(headers), raw))
    for status, headers, raw in seen:
        for key in (OAI_KEY, ANT_KEY):
            assert key not in headers and key.encode() not in raw
        assert "org-secret-account" not in headers and "x-echo-auth" not in headers.lower()
    assert sum(b"[redacted]" in raw for _, _, raw in seen) == len(seen) - 1  # embeddings ok
    assert any(status == 401 for status, _, _ in seen)
    for c in gw.calls(len(seen)):
        for key in (OAI_KEY, ANT_KEY):
            assert key not in json.dumps(c)


def test_log_content(env, gateway):
    gw = gateway()
    call(gw, "/v1/chat/completions", chat())
    (c,) = gw.calls(1)
    assert c["request_body"] is None and c["response_body"] is None
    gw = gateway("logged")
    call(gw, "/v1/chat/completions", chat(user="logged-1"))
    call(gw, "/v1/messages", messages(stream=True), anthropic=True)
    call(gw, "/v1/chat/completions", chat(model="embed"))
    plain, streamed, refused = gw.calls(3)
    assert json.loads(plain["request_body"])["user"] == "logged-1"
    assert json.loads(plain["response_body"])["choices"][0]["message"]["content"] == \
        "part0 part1 part2 "
    assert streamed["streamed"] and streamed["response_body"] == "part0 part1 part2 "
    assert json.loads(refused["request_body"])["model"] == "embed"
    assert "model not allowed" in refused["response_body"]


# ---- connections -------------------------------------------------------------------------


def open_stream(gw, body, path="/v1/chat/completions"):
    """Start a streamed call with http.client; returns (connection, response) once its
    first delta has arrived."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    conn.request("POST", path, json.dumps(body),
                 {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    seen = b""
    while b"part0" not in seen:
        line = resp.readline()
        assert line
        seen += line
    return conn, resp


def test_keep_alive_connection_carries_several_calls(env, gateway):
    gw = gateway()
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    statuses = []
    for body in (chat(), chat(stream=True), chat(model="nope"), chat()):
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        statuses.append(resp.status)
    conn.close()
    assert statuses == [200, 200, 403, 200]
    assert [c["status"] for c in gw.calls(4)] == statuses


def test_client_leaving_mid_stream(env, gateway):
    gw = gateway()
    conn, resp = open_stream(gw, chat(stream=True, max_tokens=30,
                                      fake={"gate": "leave", "chunks": 8, "delay": 0.1}))
    resp.close()
    conn.close()
    fake_release(env, "leave")
    (c,) = gw.calls(1)
    assert c["error"] == "the sandbox's client closed the connection"
    assert c["status"] == 200 and not c["usage_reported"]
    assert call(gw, "/v1/chat/completions", chat())[0] == 200
    usage = gw.stop()
    assert usage["output_tokens"] >= 30  # the cut call stays charged its reservation


def test_sigterm_reports_calls_in_flight(env, gateway):
    gw = gateway()
    conn, resp = open_stream(gw, chat(stream=True, max_tokens=40, fake={"gate": "term"}))
    usage = gw.stop()
    assert usage["reserved_output_tokens"] == 40
    (c,) = gw.calls(1)
    assert c["error"] == "the gateway was closed" and not c["usage_reported"]
    fake_release(env, "term")
    conn.close()
