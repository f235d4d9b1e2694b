"""Proxy mode and the model gateway in a microVM (docs/vm.md, "The guest's network").

The guest has no network device. Its agent listens on the guest's loopback where a
namespace sandbox finds warden's listeners, and carries each connection over its port to
the same proxies and gateway on the host. Real clients in the guest (curl, busybox's
nslookup) reach the test origins of test_proxy_mode.py and the fake provider of
test_gateway_sandbox.py; a refusal is compared with the namespace backend's own, and what
works in proxy mode is shown not to work without it. Guests of 256 MiB are saved after
their first boot (docs/vm.md, saved guests), in a cache of this module's own."""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import urllib.request

import pytest

from test_gateway_sandbox import OAI_KEY, provider, setup  # noqa: F401 (fixtures)
from test_proxy_mode import (BIG, Origin, allow_origin, audit_records, big_body, env,  # noqa: F401
                             kinds, pki, run_in, serve, servers)
from test_vm import APPLETS, BUSYBOX, no_qemu_left  # noqa: F401 (skips without QEMU)

pytestmark = pytest.mark.vm

VM = ["--isolation", "vm", "--memory", "256M"]


class Uploads(Origin):
    """The origins' GET, and PUT answering the SHA-256 of the body it received."""

    def do_PUT(self):
        left = int(self.headers["Content-Length"])
        h = hashlib.sha256()
        while left:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
        self.reply(h.hexdigest().encode() + b"\n")


@pytest.fixture(scope="module")
def upload_port():
    srv = serve(Uploads)
    yield srv.server_address[1]
    srv.shutdown()


def copy_with_libraries(binary, root):
    """binary at the same path in root, with every library it loads."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = [binary] + [w for line in out.splitlines() for w in line.split()
                        if w.startswith("/")]
    for p in paths:
        dst = os.path.join(root, p.lstrip("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(p, dst)  # follows links: the file itself, at the name it is loaded by


@pytest.fixture(scope="module")
def netroot(pki):
    """A small root: busybox's applets, curl (and its libraries), the test CA, and an
    /etc/resolv.conf that is a link to nothing."""
    d = tempfile.mkdtemp(prefix="warden-vm-netroot-")
    os.chmod(d, 0o755)
    for sub in ("bin", "etc", "tmp"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    shutil.copy2(BUSYBOX, os.path.join(d, "bin/busybox"))
    for a in APPLETS + ["nslookup", "ls", "sort"]:
        if not os.path.exists(os.path.join(d, "bin", a)):
            os.symlink("busybox", os.path.join(d, "bin", a))
    copy_with_libraries(shutil.which("curl"), d)
    shutil.copy(pki / "ca.pem", os.path.join(d, "etc/ca.pem"))
    with open(os.path.join(d, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    # As on hosts whose resolver manages it: replaced in the guest by warden's own.
    os.symlink("../run/resolv.conf", os.path.join(d, "etc/resolv.conf"))
    subprocess.run(["chmod", "-R", "a+rX", d], check=True)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def caches(test_user):
    """A VM cache for root and one for the rootless test user, kept for the module (not
    under /tmp, which QEMU's sandbox has a tmpfs of its own on)."""
    made = {}

    def get(runner):
        if runner.mode not in made:
            d = tempfile.mkdtemp(prefix="warden-vm-net-cache-", dir="/var/tmp")
            if runner.mode != "root":
                os.chown(d, test_user.pw_uid, test_user.pw_gid)
            made[runner.mode] = d
        return {"WARDEN_VM_CACHE": made[runner.mode]}
    yield get
    for d in made.values():
        shutil.rmtree(d, ignore_errors=True)


def in_vm(runner, warden, env, netroot, caches, allow, script, deny=(), opts=()):
    return run_in(runner, warden, env, allow, ["sh", "-c", script], deny=deny,
                  opts=[*VM, "--rootfs", netroot, *opts], timeout=240,
                  run_env=caches(runner))


def lines_after(out, marker):
    return out.split(marker + "\n", 1)[1].splitlines()


# ---- the proxies ------------------------------------------------------------------------


def test_http_and_https_through_the_guest_channel(runner, warden, env, netroot, caches):
    plain, tls = env["plain"], env["tls"]
    allow = allow_origin(env) + allow_origin(env, "tls", "secure.test")
    script = (f"ls /sys/class/net; echo ---; "
              f"curl -sS http://origin.test:{plain}/; "
              f"curl -sS --cacert /etc/ca.pem https://secure.test:{tls}/; "
              "echo ---; env | grep -i _proxy= | sort")
    r, evs = in_vm(runner, warden, env, netroot, caches, allow, script)
    assert r.returncode == 0, r.stderr
    devices, fetched, proxy_env = r.stdout.split("---\n")
    assert devices.split() == ["lo"]  # no network device: only the guest's loopback
    assert fetched == "hello from origin\n" * 2
    assert proxy_env.splitlines() == sorted([
        "ALL_PROXY=socks5h://127.0.0.1:1080", "HTTPS_PROXY=http://127.0.0.1:3128",
        "HTTP_PROXY=http://127.0.0.1:3128", "NO_PROXY=localhost,127.0.0.1,::1",
        "all_proxy=socks5h://127.0.0.1:1080", "https_proxy=http://127.0.0.1:3128",
        "http_proxy=http://127.0.0.1:3128", "no_proxy=localhost,127.0.0.1,::1"])
    allowed = kinds(evs, "net.allowed")
    assert [(e["proto"], e["host"], e["address"]) for e in allowed] == [
        ("http", "origin.test", "127.0.0.1"), ("connect", "secure.test", "127.0.0.1")]
    assert all(e["bytes_in"] > 0 for e in kinds(evs, "net.end") if e["proto"] != "dns")


def test_socks5_dns_and_no_way_around_the_proxies(root_runner, warden, env, netroot, caches):
    plain = env["plain"]
    script = (f"curl -sS -x socks5h://127.0.0.1:1080 http://origin.test:{plain}/; "
              "echo ---; nslookup -type=a origin.test; echo ---; "
              "nslookup -type=a other.test; echo ---; "
              # the host's loopback is not the guest's: only the proxies lead out
              f"curl -sS --noproxy '*' -m 10 http://127.0.0.1:{plain}/; echo rc=$?; "
              "curl -s -o /dev/null -w '%{http_code}\\n' --noproxy '*' "
              "http://127.0.0.1:3128/")
    r, evs = in_vm(root_runner, warden, env, netroot, caches, allow_origin(env), script)
    socks, dns_ok, dns_refused, direct = r.stdout.split("---\n")
    assert socks == "hello from origin\n", r.stderr
    assert "Address: 127.0.0.1\n" in dns_ok.split("Name:", 1)[1], dns_ok
    assert "Name:" not in dns_refused and "REFUSED" in dns_refused, dns_refused
    assert direct.splitlines()[0] != "hello from origin"
    assert "rc=7" in direct  # curl: could not connect
    assert direct.splitlines()[-1] == "400"  # the HTTP proxy itself answers on 3128
    assert [e["proto"] for e in kinds(evs, "net.allowed")] == ["socks5"]
    assert any(e["proto"] == "dns" and e["host"] == "origin.test" and
               e["address"] == "127.0.0.1" for e in kinds(evs, "net.end"))
    assert any(e["proto"] == "dns" and e["host"] == "other.test"
               for e in kinds(evs, "net.refused"))


def test_refusal_is_the_namespace_backends(root_runner, warden, env, netroot, caches):
    # The same server under two names: the one the policy allows answers, the other is
    # refused, with the event and the audit record a namespace sandbox gets for it.
    plain = env["plain"]
    cmd = (f"curl -sS -o /dev/null -w '%{{http_code}} ' http://origin.test:{plain}/; "
           f"curl -sS -w '%{{http_code}}' http://other.test:{plain}/")
    r, evs = in_vm(root_runner, warden, env, netroot, caches, allow_origin(env), cmd)
    vm_rec = audit_records(env, "net.refused")[-1]
    ns, ns_evs = run_in(root_runner, warden, env, allow_origin(env), ["sh", "-c", cmd])
    ns_rec = audit_records(env, "net.refused")[-1]
    assert r.stdout == ns.stdout, (r.stdout, ns.stdout)
    assert r.stdout.startswith("200 ") and r.stdout.endswith("403"), r.stdout
    assert "warden egress: other.test:" in r.stdout and "not in the allow list" in r.stdout

    def same(e):  # what differs between any two sandboxes' records
        return {k: v for k, v in e.items() if k not in ("ts", "sandbox", "seq", "prev")}
    vm_ref, ns_ref = kinds(evs, "net.refused"), kinds(ns_evs, "net.refused")
    assert len(vm_ref) == 1 and [same(e) for e in vm_ref] == [same(e) for e in ns_ref]
    assert vm_ref[0]["host"] == "other.test" and vm_ref[0]["reason"] == "not in the allow list"
    assert vm_rec["sandbox"] == vm_ref[0]["sandbox"] != ns_rec["sandbox"]
    assert same(vm_rec) == same(ns_rec)


# ---- flow control -----------------------------------------------------------------------


def test_large_transfers_both_ways_are_intact(root_runner, warden, env, netroot, caches,
                                              upload_port):
    # 8 MiB down to a reader that stalls (its socket fills, so the stream's credit runs
    # out on the way), then 8 MiB up; each checked by its SHA-256 at the far end.
    up = upload_port
    script = (f"curl -sS http://origin.test:{env['plain']}/big | (sleep 3; sha256sum); "
              f"head -c {BIG} /dev/urandom > /tmp/up; sha256sum < /tmp/up; "
              f"curl -sS -T /tmp/up http://origin.test:{up}/up")
    allow = allow_origin(env) + [f"origin.test:{up}", f"127.0.0.1:{up}"]
    r, evs = in_vm(root_runner, warden, env, netroot, caches, allow, script)
    assert r.returncode == 0, r.stderr
    down, up_local, up_remote = (line.split()[0] for line in r.stdout.splitlines())
    assert down == hashlib.sha256(big_body()).hexdigest()
    assert up_local == up_remote
    ends = [e for e in kinds(evs, "net.end") if e["proto"] == "http"]
    assert ends[0]["bytes_in"] >= BIG and ends[1]["bytes_out"] >= BIG, ends


# ---- the model gateway ------------------------------------------------------------------


def test_model_gateway_in_the_guest(root_runner, warden, setup, netroot, caches):  # noqa: F811
    events = os.path.join(setup["tmp"], "events.jsonl")
    chat = json.dumps({"model": "mini", "messages": [{"role": "user", "content": "hi"}],
                       "max_tokens": 20, "fake": {"echo_auth": True}})
    other = json.dumps({"model": "gpt-x", "messages": []})
    post = ('curl -sS -w "\\n%{http_code}\\n" "$OPENAI_BASE_URL/chat/completions" '
            '-H "authorization: Bearer $OPENAI_API_KEY" -H "content-type: application/json" -d')
    script = f"echo $OPENAI_API_KEY; {post} '{chat}'; {post} '{other}'"
    r = root_runner.run([warden, "run", "-q", *VM, "--rootfs", netroot, "--policy",
                         setup["policy"], "--gateway", setup["config"], "--events", events,
                         "--audit-log", os.path.join(setup["tmp"], "audit.log"),
                         "--audit-key", os.path.join(setup["tmp"], "audit.key"),
                         "--", "sh", "-c", script], timeout=240,
                        env={"GW_TEST_OAI_KEY": OAI_KEY, **caches(root_runner)})
    assert r.returncode == 0, r.stderr
    token, body, status, refused, refused_status = r.stdout.splitlines()[:5]
    # The guest holds its own token; upstream got the real key, which came back redacted.
    assert token.startswith("wdn-") and OAI_KEY not in r.stdout
    assert status == "200" and "[redacted]" in body, body
    assert refused_status == "403" and "gpt-x" in refused
    with urllib.request.urlopen(f"http://127.0.0.1:{setup['port']}/_log") as u:
        log = json.loads(u.read())
    assert any(req["headers"].get("Authorization") == f"Bearer {OAI_KEY}" for req in log)
    with open(events) as f:
        calls = [e for e in map(json.loads, f) if e["kind"] == "model.call"]
    assert [c["status"] for c in calls] == [200, 403], calls
    with open(os.path.join(setup["tmp"], "audit.log")) as f:
        recs = [x for x in map(json.loads, f) if x["kind"] == "model.call"]
    assert len(recs) == 2 and recs[0]["sandbox"] == calls[0]["sandbox"]


# ---- network mode none ------------------------------------------------------------------


def test_mode_none_has_no_network_at_all(root_runner, warden, netroot, caches):
    # What answers on 3128 in proxy mode (test_socks5_dns_...) answers nothing here, and
    # there is no device but the loopback, up as a namespace sandbox's is (a loopback's
    # operstate reads "unknown" when it is up).
    script = ("ls /sys/class/net; cat /sys/class/net/lo/operstate; env | grep -ci proxy; "
              "curl -s -o /dev/null -w '%{http_code}\\n' -m 10 http://127.0.0.1:3128/; "
              "echo rc=$?")
    r = root_runner.run([warden, "run", "-q", *VM, "--rootfs", netroot, "--", "sh", "-c",
                         script], timeout=240, env=caches(root_runner))
    assert r.stdout.splitlines() == ["lo", "unknown", "0", "000", "rc=7"], r.stdout + r.stderr
