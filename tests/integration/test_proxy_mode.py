"""`network.mode: proxy` end to end: real clients inside real sandboxes (curl, python's
urllib, getent, openssl, git, pip) reaching servers this test starts on the host's loopback
through warden's proxies, with names resolved by a hosts file given to warden. Each
refusal is shown to be the rule's doing: the same request is first shown to work where the
rule allows it."""
import hashlib
import http.server
import json
import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import tempfile
import textwrap
import threading
import zipfile

import pytest

BIG = 8 << 20


class Origin(http.server.BaseHTTPRequestHandler):
    """/ answers a greeting, /big 8 MiB of a fixed pattern, /headers the request's
    headers (as JSON); everything else is served from the directory `root` (if set)."""
    root = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, body, ctype="text/plain"):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/":
            return self.reply(b"hello from origin\n")
        if self.path == "/big":
            return self.reply(big_body(), "application/octet-stream")
        if self.path == "/headers":
            return self.reply(json.dumps(dict(self.headers.items())).encode(),
                              "application/json")
        if self.root:
            path = os.path.join(self.root, self.path.lstrip("/").split("?")[0])
            if os.path.isdir(path):
                path = os.path.join(path, "index.html")
            if os.path.isfile(path):
                ctype = ("text/html" if path.endswith(".html")
                         else "application/octet-stream")
                with open(path, "rb") as f:
                    return self.reply(f.read(), ctype)
        self.send_error(404)


def big_body():
    return (b"0123456789abcdef" * (BIG // 16))


def serve(handler, tls_ctx=None):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls_ctx:
        srv.socket = tls_ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    return srv


@pytest.fixture(scope="module")
def pki():
    """A test CA and a certificate for secure.test and git.test signed by it, readable by
    the rootless test user (sandboxes bind it)."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="warden-test-pki-"))
    os.chmod(d, 0o755)
    run = lambda *a: subprocess.run(a, cwd=d, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=warden test CA", "-keyout", "ca.key", "-out", "ca.pem")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=secure.test",
        "-keyout", "srv.key", "-out", "srv.csr")
    with open(d / "ext.cnf", "w") as f:
        f.write("subjectAltName=DNS:secure.test,DNS:git.test\n")
    run("openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "srv.pem")
    for name in os.listdir(d):
        os.chmod(d / name, 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def servers(pki, tmp_path_factory):
    """A plain origin, a TLS origin (secure.test), and a TLS static server for git's dumb
    protocol and a pip index (git.test, pypi.test)."""
    root = tmp_path_factory.mktemp("www")
    make_git_repo(root)
    make_index(root)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "srv.pem", pki / "srv.key")
    Static = type("Static", (Origin,), {"root": str(root)})
    plain = serve(Static)
    tls = serve(Static, ctx)
    yield {"plain": plain.server_address[1], "tls": tls.server_address[1], "root": root}
    plain.shutdown()
    tls.shutdown()


def make_git_repo(root):
    work = root / "work"
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True, env=env)
    (work / "README").write_text("cloned through the proxy\n")
    subprocess.run(["git", "-C", str(work), "add", "README"], check=True, env=env)
    subprocess.run(["git", "-C", str(work), "commit", "-qm", "first"], check=True, env=env)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(root / "repo.git")],
                   check=True, env=env)
    subprocess.run(["git", "-C", str(root / "repo.git"), "update-server-info"], check=True)
    shutil.rmtree(work)


def make_index(root):
    """A PEP 503 simple index holding one pure-Python wheel."""
    name = "demo_pkg-1.0-py3-none-any.whl"
    d = root / "simple" / "demo-pkg"
    d.mkdir(parents=True)
    with zipfile.ZipFile(root / name, "w") as z:
        z.writestr("demo_pkg/__init__.py", "VALUE = 42\n")
        z.writestr("demo_pkg-1.0.dist-info/METADATA",
                   "Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\n")
        z.writestr("demo_pkg-1.0.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                   "Tag: py3-none-any\n")
        z.writestr("demo_pkg-1.0.dist-info/RECORD", "")
    sha = hashlib.sha256((root / name).read_bytes()).hexdigest()
    (d / "index.html").write_text(f'<a href="/{name}#sha256={sha}">{name}</a>\n')


@pytest.fixture
def env(shared_tmp, servers):
    """Files for one test: a hosts file for warden's resolver, and helpers."""
    hosts = os.path.join(shared_tmp, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 origin.test secure.test git.test pypi.test other.test\n"
                "169.254.169.254 meta.test\n10.9.8.7 private.test\n")
    os.chmod(hosts, 0o644)
    return {"tmp": shared_tmp, "hosts": hosts, **servers}


def policy(env, allow, deny=()):
    path = os.path.join(env["tmp"], "proxy.yaml")
    with open(path, "w") as f:
        f.write("network:\n  mode: proxy\n"
                f"  allow: {json.dumps(list(allow))}\n  deny: {json.dumps(list(deny))}\n")
    os.chmod(path, 0o644)
    return path


def run_in(runner, warden, env, allow, cmd, deny=(), opts=(), timeout=60, run_env=None):
    events = os.path.join(env["tmp"], "events.jsonl")
    if os.path.exists(events):
        os.unlink(events)
    argv = [warden, "run", "-q", "--policy", policy(env, allow, deny), "--resolver-hosts",
            env["hosts"], "--events", events, "--audit-log",
            os.path.join(env["tmp"], "audit.log"), "--audit-key",
            os.path.join(env["tmp"], "audit.key"), *opts, "--", *cmd]
    r = runner.run(argv, timeout=timeout, env=run_env)
    with open(events) as f:
        evs = [json.loads(line) for line in f]
    return r, evs


def kinds(evs, kind):
    return [e for e in evs if e["kind"] == kind]


def audit_records(env, kind):
    with open(os.path.join(env["tmp"], "audit.log")) as f:
        return [r for r in map(json.loads, f) if r["kind"] == kind]


def allow_origin(env, port_key="plain", name="origin.test"):
    """A name and the loopback address it resolves to (loopback needs an address rule)."""
    port = env[port_key]
    return [f"{name}:{port}", f"127.0.0.1:{port}"]


# ---- HTTP through the proxy ---------------------------------------------------------------


def test_curl_through_the_proxy(runner, warden, env):
    url = f"http://origin.test:{env['plain']}/"
    r, evs = run_in(runner, warden, env, allow_origin(env), ["curl", "-sS", url])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from origin\n"
    allowed = kinds(evs, "net.allowed")
    assert allowed and allowed[0]["host"] == "origin.test" and allowed[0]["address"] == \
        "127.0.0.1"
    end = kinds(evs, "net.end")
    assert end and end[0]["bytes_in"] > len("hello from origin\n")


def test_python_urllib_through_the_proxy(runner, warden, env):
    url = f"http://origin.test:{env['plain']}/"
    code = f"import urllib.request; print(urllib.request.urlopen('{url}').read().decode())"
    r, _ = run_in(runner, warden, env, allow_origin(env), ["python3", "-c", code])
    assert r.returncode == 0, r.stderr
    assert "hello from origin" in r.stdout


def test_refused_name_is_refused_and_recorded(root_runner, warden, env):
    url = f"http://other.test:{env['plain']}/"
    ok, _ = run_in(root_runner, warden, env, allow_origin(env, name="other.test"),
                   ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url])
    assert ok.stdout == "200", ok.stderr
    r, evs = run_in(root_runner, warden, env, allow_origin(env),
                    ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url])
    assert r.stdout == "403"
    refused = kinds(evs, "net.refused")
    assert refused and refused[0]["host"] == "other.test"
    recs = audit_records(env, "net.refused")
    assert recs and recs[-1]["host"] == "other.test" and recs[-1]["sandbox"] == evs[0]["sandbox"]


def test_deny_wins_over_allow(runner, warden, env):
    url = f"http://origin.test:{env['plain']}/"
    r, evs = run_in(runner, warden, env, allow_origin(env), ["curl", "-sS", "-o", "/dev/null",
                    "-w", "%{http_code}", url], deny=["origin.test"])
    assert r.stdout == "403"
    assert kinds(evs, "net.refused")[0]["rule"] == "origin.test"


def test_refused_port(runner, warden, env):
    """The name is allowed on one port only."""
    url = f"http://origin.test:{env['tls']}/"
    r, _ = run_in(runner, warden, env, allow_origin(env) + [f"127.0.0.1:{env['tls']}"],
                  ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url])
    assert r.stdout == "403"


@pytest.mark.parametrize("name,reason", [("origin.test", "loopback"),
                                         ("meta.test", "metadata"),
                                         ("private.test", "private")])
def test_allowed_name_resolving_to_a_special_address(runner, warden, env, name, reason):
    url = f"http://{name}:{env['plain']}/"
    r, evs = run_in(runner, warden, env, [f"{name}:{env['plain']}"],
                    ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url])
    assert r.stdout == "403"
    refused = kinds(evs, "net.refused")
    assert refused and reason in refused[0]["reason"], refused


def test_ip_literal_needs_an_address_rule(runner, warden, env):
    # NO_PROXY sends 127.0.0.1 around the proxy (to the sandbox's own loopback): --noproxy ""
    # makes curl ask the proxy, as a program aiming at the host's loopback would.
    url = f"http://127.0.0.1:{env['plain']}/"
    cmd = ["curl", "-sS", "--noproxy", "", "-o", "/dev/null", "-w", "%{http_code}", url]
    r, _ = run_in(runner, warden, env, [f"origin.test:{env['plain']}"], cmd)
    assert r.stdout == "403"
    ok, _ = run_in(runner, warden, env, [f"127.0.0.1:{env['plain']}"], cmd)
    assert ok.stdout == "200", ok.stderr


def test_socks5_with_a_name_and_with_an_address(runner, warden, env):
    url = f"http://origin.test:{env['plain']}/"
    socks = ["curl", "-sS", "--socks5-hostname", "127.0.0.1:1080", url]
    r, evs = run_in(runner, warden, env, allow_origin(env), socks)
    assert r.stdout == "hello from origin\n", r.stderr
    assert kinds(evs, "net.allowed")[0]["proto"] == "socks5"
    literal = ["curl", "-sS", "--noproxy", "", "--socks5", "127.0.0.1:1080",
               f"http://127.0.0.1:{env['plain']}/"]
    r, evs = run_in(runner, warden, env, [f"origin.test:{env['plain']}"], literal)
    assert r.returncode != 0
    assert kinds(evs, "net.refused")


def test_plain_protocol_through_a_connect_tunnel(runner, warden, env):
    """A tunnel to a port other than 443 carries any protocol: its first bytes are looked
    at for a TLS ClientHello, and others pass unchanged."""
    url = f"http://origin.test:{env['plain']}/"
    r, evs = run_in(runner, warden, env, allow_origin(env),
                    ["curl", "-sS", "--proxytunnel", url])
    assert r.stdout == "hello from origin\n", r.stderr
    assert kinds(evs, "net.allowed")[0]["proto"] == "connect"


def test_proxy_authorization_does_not_leave(runner, warden, env):
    url = f"http://origin.test:{env['plain']}/headers"
    r, _ = run_in(runner, warden, env, allow_origin(env),
                  ["curl", "-sS", "-H", "Proxy-Authorization: Basic c2VjcmV0", url])
    assert r.returncode == 0, r.stderr
    headers = {k.lower(): v for k, v in json.loads(r.stdout).items()}
    assert "proxy-authorization" not in headers
    assert headers["host"] == f"origin.test:{env['plain']}"


def test_no_route_without_the_proxy(runner, warden, env):
    """A program that ignores the proxy variables reaches nothing outside."""
    host_ip = subprocess.run(["hostname", "-I"], capture_output=True,
                             text=True).stdout.split()
    target = host_ip[0] if host_ip else "192.0.2.1"
    code = textwrap.dedent(f"""
        import socket
        s = socket.socket()
        s.settimeout(3)
        try:
            s.connect(({target!r}, 80))
            print("connected")
        except OSError as e:
            print("refused", e.errno)
    """)
    r, _ = run_in(runner, warden, env, allow_origin(env) + [f"{target}"],
                  ["python3", "-c", code])
    assert r.stdout.startswith("refused"), r.stdout + r.stderr


# ---- TLS -----------------------------------------------------------------------------------


def test_https_through_connect(runner, warden, env, pki):
    url = f"https://secure.test:{env['tls']}/"
    r, evs = run_in(runner, warden, env, allow_origin(env, "tls", "secure.test"),
                    ["curl", "-sS", "--cacert", "/pki/ca.pem", url],
                    opts=["-v", f"{pki}:/pki:ro"])
    # The network events say whether the proxy refused or closed anything on the way.
    assert r.stdout == "hello from origin\n", (r.stderr, [e for e in evs if e["kind"].startswith("net.")])
    assert kinds(evs, "net.allowed")[0]["proto"] == "connect"


def test_sni_must_match_the_connect_host(runner, warden, env, pki):
    port = env["tls"]
    allow = allow_origin(env, "tls", "secure.test")
    base = ["openssl", "s_client", "-brief", "-proxy", "127.0.0.1:3128", "-connect",
            f"secure.test:{port}", "-CAfile", "/pki/ca.pem"]
    ok, _ = run_in(runner, warden, env, allow, ["sh", "-c", " ".join(base) +
                   " -servername secure.test </dev/null 2>&1"], opts=["-v", f"{pki}:/pki:ro"])
    assert "Verification: OK" in ok.stdout, ok.stdout
    r, evs = run_in(runner, warden, env, allow, ["sh", "-c", " ".join(base) +
                    " -servername evil.test </dev/null 2>&1"], opts=["-v", f"{pki}:/pki:ro"])
    assert "Verification: OK" not in r.stdout
    refused = kinds(evs, "net.refused")
    assert refused and "evil.test" in refused[0]["reason"], refused


def test_git_clone_over_https(runner, warden, env, pki):
    url = f"https://git.test:{env['tls']}/repo.git"
    r, _ = run_in(runner, warden, env, allow_origin(env, "tls", "git.test"),
                  ["sh", "-c", f"git clone -q {url} /tmp/repo && cat /tmp/repo/README"],
                  opts=["-v", f"{pki}:/pki:ro", "-e", "GIT_SSL_CAINFO=/pki/ca.pem"])
    assert r.stdout == "cloned through the proxy\n", r.stderr


def test_pip_download_from_an_index(runner, warden, env):
    if not shutil.which("pip3"):
        pytest.skip("pip3 is not installed")
    index = f"http://pypi.test:{env['plain']}/simple/"
    cmd = ["sh", "-c", f"pip3 download --no-deps --no-cache-dir --disable-pip-version-check "
           f"--trusted-host pypi.test --index-url {index} -d /tmp/dl demo-pkg && ls /tmp/dl"]
    r, _ = run_in(runner, warden, env, allow_origin(env, name="pypi.test"), cmd, timeout=120)
    assert "demo_pkg-1.0-py3-none-any.whl" in r.stdout, r.stdout + r.stderr


# ---- DNS -----------------------------------------------------------------------------------


def test_dns_answers_allowed_names_only(runner, warden, env):
    cmd = ["sh", "-c", "getent hosts origin.test; echo rc=$?; getent hosts other.test; "
           "echo rc=$?"]
    r, evs = run_in(runner, warden, env, allow_origin(env), cmd)
    lines = r.stdout.splitlines()
    assert lines[0].split()[0] == "127.0.0.1", r.stdout
    assert lines[1] == "rc=0"
    assert lines[-1] != "rc=0"
    assert any(e["proto"] == "dns" and e["host"] == "other.test"
               for e in kinds(evs, "net.refused"))


def test_dns_checks_the_answer_too(runner, warden, env):
    """An allowed name resolving to a refused address gets no answer."""
    r, _ = run_in(runner, warden, env, ["meta.test"], ["getent", "hosts", "meta.test"])
    assert r.returncode != 0 and "169.254" not in r.stdout


# ---- a large transfer -----------------------------------------------------------------------


def test_large_transfer_is_intact(runner, warden, env):
    url = f"http://origin.test:{env['plain']}/big"
    r, evs = run_in(runner, warden, env, allow_origin(env),
                    ["sh", "-c", f"curl -sS -p {url} | sha256sum"])
    assert r.stdout.split()[0] == hashlib.sha256(big_body()).hexdigest(), r.stderr
    assert kinds(evs, "net.end")[0]["bytes_in"] >= BIG
