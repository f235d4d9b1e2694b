"""The egress proxies of `network.mode: proxy` (src/lib/net/egress*.c, rules.c) served by
tests/net/egressd without a sandbox, driven with raw sockets: what real clients in a sandbox
(test_proxy_mode.py) never send. Covered: malformed and smuggling HTTP requests, CONNECT
targets, URL tricks, SOCKS5 edge cases, the DNS server's answers to odd and malformed
queries, the TLS ClientHello required on port 443, connecting to exactly the checked
address (DNS rebinding), deny over allow, wildcards, port-limited rules, special addresses,
timeouts. Names are resolved by a hosts file and a fake name server that logs its queries;
the origins listen on 127.0.0.2 and 127.0.0.3, the TLS one on 127.0.0.1:443 (its tests are
skipped where that port cannot be had). Each refusal is shown to be the rule's doing where that means something: the same request
to an allowed destination is shown to work first."""
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("WARDEN_BUILD", os.path.join(ROOT, "build"))
EGRESSD = os.path.join(BUILD, "tests", "net", "egressd")

A_ADDR = "127.0.0.2"  # the allowed origin
E_ADDR = "127.0.0.3"  # the origin nothing may reach
TIMEOUT = 5


# ---- a fake name server ----------------------------------------------------------------------

QTYPE = {"A": 1, "AAAA": 28, "MX": 15, "TXT": 16, "ANY": 255, "PTR": 12}


def dns_name(name):
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"


def dns_query(name, qtype="A", qid=0x1234, qclass=1):
    qt = QTYPE[qtype] if isinstance(qtype, str) else qtype
    return (struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + dns_name(name) +
            struct.pack(">HH", qt, qclass))


def dns_parse_answer(pkt):
    """(rcode, [address text], id) of a reply."""
    qid, flags, qd, an = struct.unpack(">HHHH", pkt[:8])
    if an == 0:
        return flags & 0xf, [], qid
    pos = 12
    for _ in range(qd):
        while pkt[pos]:
            pos += 1 + pkt[pos]
        pos += 5
    addrs = []
    for _ in range(an):
        if pkt[pos] & 0xc0 == 0xc0:
            pos += 2
        else:
            while pkt[pos]:
                pos += 1 + pkt[pos]
            pos += 1
        rtype, _, _, rdlen = struct.unpack(">HHIH", pkt[pos:pos + 10])
        pos += 10
        rdata = pkt[pos:pos + rdlen]
        pos += rdlen
        if rtype == 1:
            addrs.append(socket.inet_ntop(socket.AF_INET, rdata))
        elif rtype == 28:
            addrs.append(socket.inet_ntop(socket.AF_INET6, rdata))
    return flags & 0xf, addrs, qid


class FakeDNS:
    """Answers from `records` ({name: {"A": [...], "AAAA": [...]}}; a callable value is
    called for each query); a name it does not know is NXDOMAIN, a known name without
    records of the type asked is NODATA, a name in `silent` gets no answer. Every query is
    logged as (name in lower case, type)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.records = {}
        self.silent = set()
        self.queries = []
        self.lock = threading.Lock()
        threading.Thread(target=self.serve, daemon=True).start()

    def asked(self, name):
        with self.lock:
            return [t for n, t in self.queries if n == name]

    def serve(self):
        while True:
            try:
                pkt, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                self.answer(pkt, peer)
            except (IndexError, struct.error):
                pass

    def answer(self, pkt, peer):
        qid, _, qd = struct.unpack(">HHH", pkt[:6])
        pos, labels = 12, []
        while pkt[pos]:
            labels.append(pkt[pos + 1:pos + 1 + pkt[pos]].decode("ascii", "replace"))
            pos += 1 + pkt[pos]
        qtype, _ = struct.unpack(">HH", pkt[pos + 1:pos + 5])
        question = pkt[12:pos + 5]
        name = ".".join(labels).lower()
        tname = {1: "A", 28: "AAAA"}.get(qtype, str(qtype))
        with self.lock:
            self.queries.append((name, tname))
        if name in self.silent:
            return
        rec = self.records.get(name)
        if callable(rec):
            rec = rec(tname)
        rcode, answers = (3, []) if rec is None else (0, rec.get(tname, []))
        body = b""
        for a in answers:
            fam, t = (socket.AF_INET6, 28) if ":" in a else (socket.AF_INET, 1)
            rdata = socket.inet_pton(fam, a)
            body += struct.pack(">HHHIH", 0xc00c, t, 1, 0, len(rdata)) + rdata
        head = struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, len(answers), 0, 0)
        self.sock.sendto(head + question + body, peer)

    def close(self):
        self.sock.close()


# ---- origins -----------------------------------------------------------------------------------


def message_end(buf):
    """Where the HTTP request in buf ends (Content-Length or chunked framing, as read from
    the first line of each header), or None while incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    fields = {}
    for line in buf[:end].split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        fields.setdefault(k.strip().lower(), v.strip())
    pos = end + 4
    if fields.get(b"transfer-encoding", b"").split(b",")[-1].strip().lower() == b"chunked":
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(buf[pos:eol].split(b";")[0], 16)
            pos = eol + 2 + size + 2
            if len(buf) < pos:
                return None
            if size == 0:
                return pos
    pos += int(fields.get(b"content-length", b"0"))
    return pos if len(buf) >= pos else None


class Server:
    """A TCP server on addr:port (0: a free one) that counts the connections it accepts and
    hands each to handle() on a thread of its own."""

    def __init__(self, addr, port=0, family=socket.AF_INET):
        self.addr = addr
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        raise NotImplementedError

    def close(self):
        self.sock.close()


class Origin(Server):
    """An HTTP server: logs each request (the message, and whatever else came within 0.2 s
    of it) and answers "origin ADDR"."""

    def __init__(self, addr, port=0, family=socket.AF_INET):
        self.requests = []
        super().__init__(addr, port, family)

    def handle(self, conn):
        """Logs (request, what came after it) and answers."""
        with conn:
            conn.settimeout(TIMEOUT)
            buf = b""
            try:
                while message_end(buf) is None:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                conn.settimeout(0.2)
                try:
                    while chunk:
                        chunk = conn.recv(65536)
                        buf += chunk
                except socket.timeout:
                    pass
                end = message_end(buf)
                with self.lock:
                    self.requests.append((buf[:end], buf[end:]))
                msg = f"origin {self.addr}\n".encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                             b"Connection: close\r\n\r\n%s" % (len(msg), msg))
            except (OSError, ValueError):
                pass


def origin_pair():
    """The allowed origin on A_ADDR and the forbidden one on E_ADDR, on the same port."""
    for _ in range(20):
        a = Origin(A_ADDR)
        try:
            return a, Origin(E_ADDR, a.port)
        except OSError:
            a.close()
    pytest.fail("no port free on both origin addresses")


def own_address():
    """One of this host's own non-loopback IPv4 addresses, or None."""
    try:
        r = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True)
    except OSError:
        return None
    if r.returncode != 0:
        return None
    for link in json.loads(r.stdout):
        for a in link.get("addr_info", []):
            if not a["local"].startswith("127."):
                return a["local"]
    return None


# ---- egressd -------------------------------------------------------------------------------------


class Egressd:
    """egressd with its own sockets; its decisions are collected as they come."""

    def __init__(self, net, allow=(), deny=(), opts=()):
        argv = [EGRESSD, "--http", "0", "--socks", "0", "--dns", "0", "--hosts",
                net["hosts"], "--nameserver", f"127.0.0.1:{net['dns'].port}"]
        for r in allow:
            argv += ["--allow", r]
        for r in deny:
            argv += ["--deny", r]
        self.proc = subprocess.Popen(argv + list(opts), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            pytest.fail("egressd: " + self.proc.stderr.read())
        ready = json.loads(line)
        self.http, self.socks, self.dns = ready["http"], ready["socks"], ready["dns"]
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(json.loads(line))
                self.cond.notify_all()

    def decisions(self, **match):
        with self.cond:
            return [d for d in self.lines
                    if d["event"] == "decision" and all(d[k] == v for k, v in match.items())]

    def wait(self, timeout=TIMEOUT, **match):
        """The first decision with these fields, waiting for it."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [d for d in self.lines if d["event"] == "decision" and
                         all(d[k] == v for k, v in match.items())]
                if found:
                    return found[0]
                left = end - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no decision {match}; got {self.lines}")
                self.cond.wait(left)

    def settle(self, seconds=0.3):
        """The decisions made so far, once none came for a moment."""
        while True:
            n = len(self.decisions())
            time.sleep(seconds)
            if len(self.decisions()) == n:
                return self.decisions()

    def stop(self):
        """SIGTERM: it must still be alive (no crash) and exit 0."""
        if self.proc.returncode == 0:
            return
        assert self.proc.poll() is None, "egressd died: " + self.proc.stderr.read()
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(10) == 0, self.proc.stderr.read()


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """The fake name server, the origins, and a hosts file pointing the test names at
    them."""
    d = tmp_path_factory.mktemp("egress")
    dns = FakeDNS()
    a, e = origin_pair()
    own = own_address()
    hosts = d / "hosts"
    lines = [
        f"{A_ADDR} allowed.test a.wild.test x.y.wild.test wild.test evilwild.test",
        f"{A_ADDR} open.corp.test secret.corp.test ported.test",
        f"{E_ADDR} evil.test",
        f"{E_ADDR} two.test",  # two addresses, the first refused
        f"{A_ADDR} two.test",
        "127.0.0.1 secure.test other.test",
        "10.1.2.3 private.test",
        "169.254.169.254 meta.test",
        "100.64.1.1 cgnat.test",
        "224.0.0.5 mcast.test",
        "fd00::5 ula.test",
        "fe80::1 linklocal6.test",
        "::ffff:169.254.169.254 mapped.test",
        "64:ff9b::a9fe:a9fe nat64.test",
        "2002:a9fe:a9fe::1 sixtofour.test",
        "64:ff9b::cb00:7109 nat64pub.test",  # 203.0.113.9
    ]
    if own:
        lines.append(f"{own} self.test")
    hosts.write_text("\n".join(lines) + "\n")
    # the fake server knows the hosts file's names (NODATA for the family they lack)
    for line in lines:
        for name in line.split()[1:]:
            dns.records.setdefault(name, {})
    dns.records["dns-v4.test"] = {"A": ["203.0.113.10"]}
    dns.records["dns-v6.test"] = {"AAAA": ["2001:db8::10"]}
    dns.records["mixed.test"] = {"A": ["10.0.0.1", "203.0.113.7", "127.0.0.1"]}
    dns.records["dns-private.test"] = {"A": ["192.168.1.1"], "AAAA": ["fd00::1"]}
    dns.silent.add("slow.test")
    rebind = {"n": 0}

    def rebinding(qtype):
        """The first A answer is the allowed origin, every later one the other."""
        if qtype != "A":
            return {}
        rebind["n"] += 1
        return {"A": [A_ADDR if rebind["n"] == 1 else E_ADDR]}

    dns.records["rebind.test"] = rebinding
    yield {"hosts": str(hosts), "dns": dns, "a": a, "e": e, "port": a.port, "own": own}
    dns.close()
    a.close()
    e.close()


@pytest.fixture
def egress(net):
    """egress(allow, deny, opts): a running egressd; each is stopped (and checked to be
    alive) after the test."""
    started = []

    def start(allow=(), deny=(), opts=()):
        eg = Egressd(net, allow, deny, opts)
        started.append(eg)
        return eg

    yield start
    for eg in started:
        eg.stop()


# ---- clients -------------------------------------------------------------------------------------


def connect(port, host="127.0.0.1"):
    s = socket.create_connection((host, port), timeout=TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_all(s):
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        data += chunk
    return data


def status_of(resp):
    line = resp.split(b"\r\n", 1)[0]
    return int(line.split()[1]) if line.startswith(b"HTTP/1.1 ") else None


def body_of(resp):
    return resp.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in resp else b""


def http(eg, raw):
    """Send raw bytes to the HTTP proxy; (status, body) of what comes back before it
    closes."""
    with connect(eg.http) as s:
        s.sendall(raw)
        resp = recv_all(s)
    return status_of(resp), body_of(resp)


def get(eg, url, headers=b""):
    return http(eg, b"GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (url.encode(), headers))


def open_connect(eg, target):
    """CONNECT target: (socket, status, body of a refusal)."""
    s = connect(eg.http)
    s.sendall(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target.encode(), target.encode()))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            break
        head += chunk
    status = status_of(head)
    if status != 200:
        head += recv_all(s)
        s.close()
        return None, status, body_of(head)
    return s, status, b""


def through(s):
    """A request through an open tunnel: the origin's answer body."""
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    return body_of(recv_all(s))


def socks_greet(s, methods=b"\x00"):
    s.sendall(b"\x05" + bytes([len(methods)]) + methods)
    return s.recv(2)


def socks_connect(eg, atyp, addr, port, cmd=1):
    """Greet, then ask: (socket, reply code or None when closed)."""
    s = connect(eg.socks)
    assert socks_greet(s) == b"\x05\x00"
    if atyp == 3:
        dst = bytes([len(addr)]) + addr
    else:
        dst = addr
    s.sendall(b"\x05" + bytes([cmd, 0, atyp]) + dst + struct.pack(">H", port))
    reply = s.recv(10)
    if len(reply) < 2:
        return s, None
    assert reply[0] == 5 and len(reply) == 10, reply
    return s, reply[1]


def socks_name(eg, name, port):
    return socks_connect(eg, 3, name.encode(), port)


def dns_ask(eg, pkt, timeout=TIMEOUT):
    """Send a datagram to the DNS server: the reply, or None if none came."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(pkt, ("127.0.0.1", eg.dns))
        try:
            return s.recv(4096)
        except socket.timeout:
            return None


def resolve(eg, name, qtype="A"):
    reply = dns_ask(eg, dns_query(name, qtype))
    assert reply is not None, f"no answer for {name} {qtype}"
    rcode, addrs, _ = dns_parse_answer(reply)
    return rcode, addrs


NOERROR, FORMERR, SERVFAIL, NXDOMAIN, REFUSED = 0, 1, 2, 3, 5


def allowed_control(eg, net):
    """The request that works: shown before each refusal that differs from it only in
    the part being refused."""
    status, body = get(eg, f"http://allowed.test:{net['port']}/")
    assert (status, body) == (200, b"origin 127.0.0.2\n")


# ---- HTTP: absolute-URI requests ---------------------------------------------------------------


def test_forwarded_request_reaches_the_origin_rewritten(egress, net):
    eg = egress(allow=["allowed.test", A_ADDR])
    n = len(net["a"].requests)
    status, body = http(eg, b"GET http://allowed.test:%d/p/a?q=1 HTTP/1.1\r\nHost: evil.test\r\n"
                            b"Proxy-Authorization: Basic c2VjcmV0\r\nConnection: X-Hop\r\n"
                            b"X-Hop: 1\r\nX-Kept: 2\r\n\r\n" % net["port"])
    assert (status, body) == (200, b"origin 127.0.0.2\n")
    head, after = net["a"].requests[n]
    assert head == (b"GET /p/a?q=1 HTTP/1.1\r\nHost: allowed.test:%d\r\nX-Kept: 2\r\n"
                    b"Connection: close\r\n\r\n" % net["port"])
    assert after == b""
    first = eg.wait(host="allowed.test", final=False)
    final = eg.wait(host="allowed.test", final=True)
    for d in (first, final):
        assert (d["proto"], d["port"], d["address"], d["allowed"], d["rule"], d["reason"]) == \
            ("http", net["port"], A_ADDR, True, "allowed.test", None)
    assert final["bytes_out"] == len(head)
    assert final["bytes_in"] > len(body)


@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
def test_request_without_host_header_takes_the_url_host(egress, net, version):
    eg = egress(allow=["allowed.test", A_ADDR])
    n = len(net["a"].requests)
    status, body = http(eg, b"GET http://allowed.test:%d/x HTTP/%s\r\n\r\n"
                        % (net["port"], version))
    assert (status, body) == (200, b"origin 127.0.0.2\n")
    assert net["a"].requests[n][0] == (b"GET /x HTTP/%s\r\nHost: allowed.test:%d\r\n"
                                       b"Connection: close\r\n\r\n" % (version, net["port"]))


@pytest.mark.parametrize("request_line, why", [
    (b"GARBAGE", "invalid HTTP method"),
    (b"GET http:///x HTTP/1.1", "malformed URL"),
    (b"GET /x HTTP/1.1", "not an absolute URL: this is a proxy (GET http://host/path, or "
                         "CONNECT host:port)"),
    (b"GET https://allowed.test/ HTTP/1.1",
     "only http:// URLs are forwarded (https: CONNECT host:443)"),
    (b"GET ftp://allowed.test/ HTTP/1.1",
     "only http:// URLs are forwarded (https: CONNECT host:443)"),
    # userinfo and percent-encoding: whichever host a reader could see, none is reached
    (b"GET http://allowed.test@evil.test:PORT/ HTTP/1.1", "credentials in the URL"),
    (b"GET http://evil.test:PORT@allowed.test:PORT/ HTTP/1.1", "credentials in the URL"),
    (b"GET http://evil.test%40allowed.test:PORT/ HTTP/1.1", "malformed URL"),
    (b"GET http://allowed.test%2eevil.test:PORT/ HTTP/1.1", "malformed URL"),
    (b"GET http://evil.test#@allowed.test:PORT/ HTTP/1.1", "invalid URL"),
    (b"GET http://allowed.test\\@evil.test:PORT/ HTTP/1.1", "invalid URL"),
    (b"GET http://allowed.test:PORT\\@evil.test/ HTTP/1.1", "invalid URL"),
    (b"GET http://allowed.test:99999/ HTTP/1.1", "malformed URL"),
])
def test_malformed_request_is_answered_400(egress, net, request_line, why):
    eg = egress(allow=["allowed.test", A_ADDR])
    allowed_control(eg, net)
    conns = net["a"].conns, net["e"].conns
    line = request_line.replace(b"PORT", b"%d" % net["port"])
    status, body = http(eg, line + b"\r\nHost: allowed.test\r\n\r\n")
    assert (status, body) == (400, f"warden egress: {why}\n".encode())
    assert (net["a"].conns, net["e"].conns) == conns
    # a request that names no destination makes no decision
    assert [d["host"] for d in eg.settle()] == ["allowed.test", "allowed.test"]


def test_request_head_limit(egress, net):
    eg = egress(allow=["allowed.test", A_ADDR])
    url = b"http://allowed.test:%d/" % net["port"]
    status, _ = http(eg, b"GET %s HTTP/1.1\r\nX: %s\r\n\r\n" % (url, b"a" * 16000))
    assert status == 200
    status, body = http(eg, b"GET %s HTTP/1.1\r\nX: %s\r\n\r\n" % (url, b"a" * 17000))
    assert (status, body) == (431, b"warden egress: request head larger than 16384 bytes\n")
    status, _ = http(eg, b"GET %s HTTP/1.1\r\n%s\r\n" % (url, b"X: a\r\n" * 100))
    assert status == 200
    status, body = http(eg, b"GET %s HTTP/1.1\r\n%s\r\n" % (url, b"X: a\r\n" * 101))
    assert (status, body) == (431, b"warden egress: more than 100 header fields\n")


@pytest.mark.parametrize("framing, why", [
    (b"Content-Length: 3\r\nTransfer-Encoding: chunked", "unexpected content-length header"),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 3", "unexpected content-length header"),
    (b"Content-Length: 3\r\nContent-Length: 14", "unexpected content-length header"),
    (b"Transfer-Encoding: chunked, identity", "request has invalid transfer-encoding"),
    (b"Transfer-Encoding: xchunked", "request has invalid transfer-encoding"),
    (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
     "request has invalid transfer-encoding"),
])
def test_ambiguous_body_framing_is_refused(egress, net, framing, why):
    """Request smuggling: a body whose length two readers could read differently."""
    eg = egress(allow=["allowed.test", A_ADDR])
    n = len(net["a"].requests)
    url = b"http://allowed.test:%d/" % net["port"]
    body = b"3\r\nabc\r\n0\r\n\r\n"
    status, _ = http(eg, b"POST %s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%s" % (url, body))
    assert status == 200
    assert net["a"].requests[n][0].endswith(b"\r\n\r\n" + body)
    status, answer = http(eg, b"POST %s HTTP/1.1\r\n%s\r\n\r\n%s" % (url, framing, body))
    assert (status, answer) == (400, f"warden egress: {why}\n".encode())
    time.sleep(0.3)
    assert len(net["a"].requests) == n + 1


def test_transfer_encoding_lines_reach_the_origin_as_one(egress, net):
    """The body is framed by the last coding of all Transfer-Encoding lines: an origin
    reading only the first line must not see another framing."""
    eg = egress(allow=["allowed.test", A_ADDR])
    n = len(net["a"].requests)
    status, _ = http(eg, b"POST http://allowed.test:%d/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\n"
                         b"X: 1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                         % net["port"])
    assert status == 200
    head, after = net["a"].requests[n]
    assert head.count(b"Transfer-Encoding") == 1
    assert b"\r\nTransfer-Encoding: gzip, chunked\r\nX: 1\r\n" in head
    assert head.endswith(b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n") and after == b""


def test_a_second_request_on_the_connection_goes_nowhere(egress, net):
    eg = egress(allow=["allowed.test", A_ADDR, E_ADDR])
    n = len(net["a"].requests)
    conns = net["e"].conns
    for first in (b"POST http://allowed.test:%d/ HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
                  b"POST http://allowed.test:%d/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"3\r\nabc\r\n0\r\n\r\n"):
        second = b"GET http://evil.test:%d/ HTTP/1.1\r\nHost: evil.test\r\n\r\n" % net["port"]
        status, body = http(eg, first % net["port"] + second)
        assert (status, body) == (200, b"origin 127.0.0.2\n")
    time.sleep(0.3)
    assert [r[1] for r in net["a"].requests[n:]] == [b"", b""]
    assert all(b"evil" not in r[0] for r in net["a"].requests[n:])
    assert net["e"].conns == conns
    assert not eg.decisions(host="evil.test")


def test_request_cut_short_is_not_completed(egress, net):
    eg = egress(allow=["allowed.test", A_ADDR])
    n = len(net["a"].requests)
    with connect(eg.http) as s:
        s.sendall(b"POST http://allowed.test:%d/ HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"
                  % net["port"])
        eg.wait(host="allowed.test", final=False)
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s) == b""
    eg.wait(host="allowed.test", final=True)
    time.sleep(0.3)
    assert len(net["a"].requests) == n


# ---- HTTP: CONNECT ------------------------------------------------------------------------------


def test_connect_tunnel(egress, net):
    eg = egress(allow=["allowed.test", A_ADDR])
    s, status, _ = open_connect(eg, f"allowed.test:{net['port']}")
    assert status == 200
    with s:
        assert through(s) == b"origin 127.0.0.2\n"
    final = eg.wait(host="allowed.test", final=True)
    assert (final["proto"], final["address"], final["rule"]) == ("connect", A_ADDR, "allowed.test")
    sent = len(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert final["bytes_out"] == sent
    assert final["bytes_in"] == len(b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n"
                                    b"Connection: close\r\n\r\norigin 127.0.0.2\n")


def test_connect_name_is_case_insensitive_and_may_end_in_a_dot(egress, net):
    eg = egress(allow=["allowed.test", A_ADDR])
    s, status, _ = open_connect(eg, f"ALLOWED.Test.:{net['port']}")
    assert status == 200
    with s:
        assert through(s) == b"origin 127.0.0.2\n"
    assert eg.wait(final=True)["host"] == "allowed.test"


@pytest.mark.parametrize("target", [
    "allowed.test", "allowed.test:", "allowed.test:abc", "allowed.test:99999",
    "allowed.test:65536", "allowed.test:-1", "allowed.test:+80", ":80", "allowed.test:80/x",
    "user@allowed.test:80", "http://allowed.test:80", "::1:80", "bad%20name.test:80",
    "*.wild.test:80",
])
def test_connect_target_without_host_and_port(egress, net, target):
    eg = egress(allow=["allowed.test", A_ADDR, "[::1]"])
    s, status, _ = open_connect(eg, f"allowed.test:{net['port']}")
    assert status == 200
    s.close()
    _, status, body = open_connect(eg, target)
    assert (status, body) == (400, b"warden egress: CONNECT needs host:port\n")
    assert len(eg.settle()) == 2  # the control's, none for a request without a target


def test_connect_to_port_0(egress, net):
    eg = egress(allow=["allowed.test", A_ADDR])
    _, status, body = open_connect(eg, "allowed.test:0")
    assert (status, body) == (400, b"warden egress: allowed.test:0: port 0\n")
    d = eg.wait(host="allowed.test")
    assert (d["proto"], d["port"], d["allowed"], d["final"], d["reason"]) == \
        ("connect", 0, False, True, "port 0")


def long_name(n):
    """A valid name of exactly n bytes ending in .test."""
    labels, left = [], n - len(".test")
    while left > 0:
        size = min(63, left)
        if left - size == 1:  # no room for a dot and a label after it
            size -= 2
        labels.append("a" * size)
        left -= size + 1
    name = ".".join(labels) + ".test"
    assert len(name) == n
    return name


@pytest.mark.parametrize("name, status, reason", [
    (long_name(253), 403, "not in the allow list"),  # the longest name there is
    (long_name(254), 400, "not a host name: name longer than 253 bytes"),
    ("a" * 64 + ".test", 400, "not a host name: a label longer than 63 bytes"),
    ("bad_name.test", 400, "not a host name: not a host name (letters, digits, '-' and '.')"),
    ("-bad.test", 400, "not a host name: a label starts or ends with '-'"),
    ("bad-.test", 400, "not a host name: a label starts or ends with '-'"),
    ("a..test", 400, "not a host name: an empty label"),
    # numbers that some parsers read as addresses are names here, never resolved as such
    ("127.1", 403, "not in the allow list"),
    ("2130706433", 403, "not in the allow list"),
    ("0x7f.0.0.2", 403, "not in the allow list"),
])
def test_connect_name_checks(egress, net, name, status, reason):
    eg = egress(allow=["allowed.test", "*.wild.test", "127.0.0.0/8"])
    _, got, body = open_connect(eg, f"{name}:{net['port']}")
    assert got == status, body
    d = eg.wait()
    assert (d["host"], d["port"], d["allowed"], d["final"], d["reason"], d["rule"]) == \
        (name, net["port"], False, True, reason, None)
    assert body == f"warden egress: {name}:{net['port']}: {reason}\n".encode()
    assert not net["dns"].asked(name)


def test_connect_name_too_long_to_parse(egress, net):
    eg = egress(allow=["allowed.test", A_ADDR])
    _, status, body = open_connect(eg, "a" * 300 + ".test:80")
    assert (status, body) == (400, b"warden egress: host name too long\n")
    assert eg.settle() == []


def test_connect_ipv6_literal(egress, net):
    eg = egress(allow=["allowed.test"])
    _, status, body = open_connect(eg, "[::1]:80")
    assert (status, body) == (403, b"warden egress: ::1:80: loopback address ::1\n")
    assert eg.wait(host="::1")["reason"] == "loopback address ::1"
    try:
        origin = Origin("::1", family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        eg = egress(allow=[f"[::1]:{origin.port}"])
        s, status, _ = open_connect(eg, f"[::1]:{origin.port}")
        assert status == 200
        with s:
            assert through(s) == b"origin ::1\n"
        d = eg.wait(final=True)
        assert (d["host"], d["address"], d["rule"]) == ("::1", "::1", f"[::1]:{origin.port}")
    finally:
        origin.close()


# ---- rules ------------------------------------------------------------------------------------------


def connect_status(eg, target):
    s, status, body = open_connect(eg, target)
    if s:
        s.close()
    return status, body


def test_deny_wins_over_allow(egress, net):
    p = net["port"]
    eg = egress(allow=["*.corp.test", A_ADDR], deny=["secret.corp.test"])
    assert connect_status(eg, f"open.corp.test:{p}")[0] == 200
    assert connect_status(eg, f"secret.corp.test:{p}")[0] == 403
    d = eg.wait(host="secret.corp.test")
    assert (d["allowed"], d["reason"], d["rule"]) == (False, "denied by rule", "secret.corp.test")
    assert not net["dns"].asked("secret.corp.test")


@pytest.mark.parametrize("deny", [A_ADDR, "127.0.0.0/24", f"{A_ADDR}:PORT", "*:PORT"])
def test_deny_by_address_wins_over_allow(egress, net, deny):
    """The name is allowed, and its address is named by an allow rule too."""
    p = net["port"]
    deny = deny.replace("PORT", str(p))
    eg = egress(allow=["allowed.test", A_ADDR])
    assert connect_status(eg, f"allowed.test:{p}")[0] == 200
    eg = egress(allow=["allowed.test", A_ADDR], deny=[deny])
    assert connect_status(eg, f"allowed.test:{p}")[0] == 403
    d = eg.wait(host="allowed.test")
    assert (d["allowed"], d["reason"], d["rule"]) == \
        (False, f"denied by rule (address {A_ADDR})", deny)
    # and an address asked for as such
    assert connect_status(eg, f"{A_ADDR}:{p}")[0] == 403
    assert eg.wait(host=A_ADDR)["rule"] == deny


def test_deny_of_an_ipv4_address_covers_its_nat64_form(egress, net):
    eg = egress(allow=["nat64pub.test"], deny=["203.0.113.9"])
    assert connect_status(eg, "nat64pub.test:80")[0] == 403
    d = eg.wait(host="nat64pub.test")
    assert (d["reason"], d["rule"]) == \
        ("denied by rule (address 64:ff9b::cb00:7109)", "203.0.113.9")


@pytest.mark.parametrize("name, allowed", [
    ("a.wild.test", True), ("x.y.wild.test", True), ("A.WILD.TEST", True),
    ("wild.test", False), ("evilwild.test", False), ("wild.test.evil.test", False),
])
def test_wildcard_rule(egress, net, name, allowed):
    eg = egress(allow=["*.wild.test", A_ADDR])
    status, _ = connect_status(eg, f"{name}:{net['port']}")
    d = eg.wait(host=name.lower())
    if allowed:
        assert (status, d["allowed"], d["rule"]) == (200, True, "*.wild.test")
    else:
        assert (status, d["allowed"], d["reason"]) == (403, False, "not in the allow list")


def test_port_limited_rules(egress, net):
    p = net["port"]
    other = p + 1 if p < 65535 else p - 1
    eg = egress(allow=[f"allowed.test:{p}", A_ADDR])
    assert connect_status(eg, f"allowed.test:{p}")[0] == 200
    assert eg.wait(host="allowed.test")["rule"] == f"allowed.test:{p}"
    assert connect_status(eg, f"allowed.test:{other}")[0] == 403
    d = eg.wait(host="allowed.test", port=other)
    assert (d["allowed"], d["reason"]) == (False, "not in the allow list")
    # an address rule limited to a port opens the special address on that port only
    eg = egress(allow=["allowed.test", f"{A_ADDR}:{p}"])
    assert connect_status(eg, f"allowed.test:{p}")[0] == 200
    assert connect_status(eg, f"{A_ADDR}:{p}")[0] == 200
    assert connect_status(eg, f"allowed.test:{other}")[0] == 403
    assert eg.wait(host="allowed.test", port=other)["reason"] == f"loopback address {A_ADDR}"
    assert connect_status(eg, f"{A_ADDR}:{other}")[0] == 403
    assert eg.wait(host=A_ADDR, port=other)["reason"] == f"loopback address {A_ADDR}"


def test_an_address_needs_an_address_rule(egress, net):
    p = net["port"]
    eg = egress(allow=["allowed.test", "127.0.0.0/8"])
    assert connect_status(eg, f"{A_ADDR}:{p}")[0] == 200
    assert eg.wait(host=A_ADDR)["rule"] == "127.0.0.0/8"
    eg = egress(allow=["allowed.test", "*:80"])
    assert connect_status(eg, "203.0.113.9:443")[0] == 403
    d = eg.wait(host="203.0.113.9")
    assert d["reason"] == "not in the allow list (an address needs an address rule)"
    # "*:PORT" allows any address on that port but the special ones
    assert connect_status(eg, f"{A_ADDR}:80")[0] == 403
    assert eg.wait(host=A_ADDR)["reason"] == f"loopback address {A_ADDR}"


SPECIAL = [
    ("allowed.test", f"loopback address {A_ADDR}"),
    ("private.test", "private address 10.1.2.3"),
    ("meta.test", "cloud metadata address 169.254.169.254"),
    ("cgnat.test", "shared (CGNAT) address 100.64.1.1"),
    ("mcast.test", "multicast address 224.0.0.5"),
    ("ula.test", "unique local (private) address fd00::5"),
    ("linklocal6.test", "link-local address fe80::1"),
    ("mapped.test", "cloud metadata address 169.254.169.254"),
    ("nat64.test", "cloud metadata address 64:ff9b::a9fe:a9fe"),
    ("sixtofour.test", "cloud metadata address 2002:a9fe:a9fe::1"),
    ("self.test", "this host's address OWN"),
]


@pytest.mark.parametrize("name, reason", SPECIAL)
def test_allowed_name_resolving_to_a_special_address(egress, net, name, reason):
    if "OWN" in reason:
        if not net["own"]:
            pytest.skip("this host has no address but loopback")
        reason = reason.replace("OWN", net["own"])
    eg = egress(allow=["allowed.test", A_ADDR])
    assert connect_status(eg, f"allowed.test:{net['port']}")[0] == 200
    eg = egress(allow=[name, "*:80", "*:PORT".replace("PORT", str(net["port"]))])
    status, body = connect_status(eg, f"{name}:{net['port']}")
    assert status == 403
    d = eg.wait(host=name)
    assert (d["allowed"], d["reason"], d["rule"], d["address"]) == (False, reason, None, None)
    assert body == f"warden egress: {name}:{net['port']}: {reason}\n".encode()


def test_connects_to_exactly_the_checked_address(egress, net):
    """two.test has two addresses; the first is refused: the proxy connects to the other,
    and nothing reaches the refused one."""
    p = net["port"]
    conns_a, conns_e = net["a"].conns, net["e"].conns
    eg = egress(allow=["two.test", A_ADDR])
    s, status, _ = open_connect(eg, f"two.test:{p}")
    assert status == 200
    with s:
        assert through(s) == b"origin 127.0.0.2\n"
    assert eg.wait(host="two.test", final=True)["address"] == A_ADDR
    assert (net["a"].conns, net["e"].conns) == (conns_a + 1, conns_e)


def test_no_second_resolution(egress, net):
    """DNS rebinding: rebind.test answers the allowed origin's address once, then the
    other's. The connection goes to the address that was checked, resolved once; the next
    request's resolution is checked afresh."""
    p = net["port"]
    conns_e = net["e"].conns
    eg = egress(allow=["rebind.test", A_ADDR])
    s, status, _ = open_connect(eg, f"rebind.test:{p}")
    assert status == 200
    with s:
        assert through(s) == b"origin 127.0.0.2\n"
    assert eg.wait(host="rebind.test", final=True)["address"] == A_ADDR
    assert net["dns"].asked("rebind.test").count("A") == 1
    assert connect_status(eg, f"rebind.test:{p}")[0] == 403
    d = eg.wait(host="rebind.test", allowed=False)
    assert d["reason"] == f"loopback address {E_ADDR}"
    assert net["dns"].asked("rebind.test").count("A") == 2
    assert net["e"].conns == conns_e


def test_refused_name_is_never_resolved(egress, net):
    eg = egress(allow=["dns-v4.test"], deny=["denied.dns-v4.test"])
    for name in ("unknown.test", "denied.dns-v4.test"):
        assert connect_status(eg, f"{name}:80")[0] == 403
        _, addrs = resolve(eg, name)
        assert addrs == []
        assert not net["dns"].asked(name)


def test_unresolvable_name(egress, net):
    eg = egress(allow=["nx.test"])
    status, body = connect_status(eg, "nx.test:80")
    assert status == 502
    reason = "could not resolve: nodename nor servname provided, or not known"
    assert eg.wait(host="nx.test")["reason"] == reason
    assert body == f"warden egress: nx.test:80: {reason}\n".encode()


def test_connection_refused_by_an_allowed_destination(egress, net):
    eg = egress(allow=["allowed.test", A_ADDR])
    closed = socket.socket()
    closed.bind((A_ADDR, 0))
    port = closed.getsockname()[1]
    closed.close()
    status, body = connect_status(eg, f"allowed.test:{port}")
    assert status == 502
    d = eg.wait(host="allowed.test")
    assert (d["allowed"], d["final"], d["reason"], d["address"]) == \
        (True, True, "could not connect: Connection refused", A_ADDR)


# ---- SOCKS5 -------------------------------------------------------------------------------------------


def test_socks_connect_by_name(egress, net):
    eg = egress(allow=["allowed.test", A_ADDR])
    s, rep = socks_name(eg, "allowed.test", net["port"])
    with s:
        assert rep == 0
        assert through(s) == b"origin 127.0.0.2\n"
    d = eg.wait(final=True)
    assert (d["proto"], d["host"], d["address"], d["rule"]) == \
        ("socks5", "allowed.test", A_ADDR, "allowed.test")


def test_socks_handshake_in_one_write_and_in_single_bytes(egress, net):
    eg = egress(allow=["allowed.test", A_ADDR])
    req = b"\x05\x01\x00\x03\x0callowed.test" + struct.pack(">H", net["port"])
    get_ = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    with connect(eg.socks) as s:  # greeting, request and the first bytes for the origin
        s.sendall(b"\x05\x01\x00" + req + get_)
        resp = recv_all(s)
    assert resp[:2] == b"\x05\x00" and resp[2:4] == b"\x05\x00"
    assert body_of(resp[12:]) == b"origin 127.0.0.2\n"
    with connect(eg.socks) as s:
        for b in b"\x05\x01\x00" + req:
            s.send(bytes([b]))
            time.sleep(0.005)
        assert s.recv(2) == b"\x05\x00"
        assert s.recv(10)[:2] == b"\x05\x00"
        assert through(s) == b"origin 127.0.0.2\n"


@pytest.mark.parametrize("methods", [b"\x02", b"\x01\x02\x80", b""])
def test_socks_no_acceptable_method(egress, net, methods):
    eg = egress(allow=["allowed.test", A_ADDR])
    with connect(eg.socks) as s:
        assert socks_greet(s, b"\x02\x00") == b"\x05\x00"  # offered among others
    with connect(eg.socks) as s:
        assert socks_greet(s, methods) == b"\x05\xff"
        assert recv_all(s) == b""
    assert eg.settle() == []


@pytest.mark.parametrize("greeting", [b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00", b"\x00\x01\x00"])
def test_socks_wrong_version_is_closed_unanswered(egress, net, greeting):
    eg = egress(allow=["allowed.test"])
    with connect(eg.socks) as s:
        s.sendall(greeting)
        assert recv_all(s) == b""


@pytest.mark.parametrize("partial", [b"\x05", b"\x05\x02\x00", b"\x05\x01\x00\x05\x01\x00\x03"])
def test_socks_truncated_handshake(egress, net, partial):
    """A client that stops inside its greeting or request, and says so, is closed."""
    eg = egress(allow=["allowed.test"])
    with connect(eg.socks) as s:
        s.sendall(partial)
        s.shutdown(socket.SHUT_WR)
        resp = recv_all(s)
    assert resp in (b"", b"\x05\x00")  # the greeting's answer when it was whole
    assert eg.settle() == []


@pytest.mark.parametrize("cmd", [2, 3, 9])
def test_socks_commands_other_than_connect(egress, net, cmd):
    """BIND, UDP ASSOCIATE, and an unknown command: "command not supported"."""
    eg = egress(allow=["allowed.test", A_ADDR])
    s, rep = socks_name(eg, "allowed.test", net["port"])
    s.close()
    assert rep == 0
    s, rep = socks_connect(eg, 3, b"allowed.test", net["port"], cmd=cmd)
    with s:
        assert rep == 7
        assert recv_all(s) == b""
    assert len(eg.settle()) == 2  # the control's


def test_socks_address_types(egress, net):
    p = net["port"]
    v6 = lambda a: socket.inet_pton(socket.AF_INET6, a)
    eg = egress(allow=[A_ADDR])
    s, rep = socks_connect(eg, 1, socket.inet_aton(A_ADDR), p)
    with s:
        assert rep == 0
        assert through(s) == b"origin 127.0.0.2\n"
    # an IPv4-mapped IPv6 address is that IPv4 address
    s, rep = socks_connect(eg, 4, v6("::ffff:" + A_ADDR), p)
    with s:
        assert rep == 0
        assert through(s) == b"origin 127.0.0.2\n"
    d = eg.wait(host="::ffff:" + A_ADDR, final=True)
    assert (d["address"], d["rule"]) == (A_ADDR, A_ADDR)
    s, rep = socks_connect(eg, 4, v6("::ffff:" + E_ADDR), p)
    s.close()
    assert rep == 2
    assert eg.wait(host="::ffff:" + E_ADDR)["reason"] == f"loopback address {E_ADDR}"
    s, rep = socks_connect(eg, 4, v6("::1"), p)
    s.close()
    assert rep == 2
    assert eg.wait(host="::1")["reason"] == "loopback address ::1"
    s, rep = socks_connect(eg, 5, b"\x7f\x00\x00\x02", p)  # no such type
    s.close()
    assert rep == 8


@pytest.mark.parametrize("name, rep, reason", [
    (b"", 1, None),
    (b"allowed.test\x00evil.test", 1, None),
    (long_name(254).encode(), 1, "not a host name: name longer than 253 bytes"),
    (b"a" * 255, 1, "not a host name: name longer than 253 bytes"),
    (b"*.wild.test", 1, "not a host name: '*' only as a whole first label (*.example.com)"),
    (b"bad name.test", 1, "not a host name: not a host name (letters, digits, '-' and '.')"),
    (b'q"x\\y\x01\xff.test', 1,
     "not a host name: not a host name (letters, digits, '-' and '.')"),
    (b"evil.test", 2, "not in the allow list"),
    (b"private.test", 2, "private address 10.1.2.3"),
    (b"nx.test", 4, "could not resolve: nodename nor servname provided, or not known"),
])
def test_socks_refusals(egress, net, name, rep, reason):
    """A refusal answers a reply code; a name too broken to be a destination makes no
    decision, and what is reported of a name has nothing but printable ASCII."""
    eg = egress(allow=["allowed.test", A_ADDR, "*.wild.test", "private.test", "nx.test"])
    s, got = socks_name(eg, "allowed.test", net["port"])
    s.close()
    assert got == 0
    s, got = socks_connect(eg, 3, name, net["port"])
    with s:
        assert got == rep
        assert recv_all(s) == b""
    refused = [d for d in eg.settle() if d["host"] != "allowed.test"]
    if reason is None:
        assert refused == []
    else:
        shown = "".join(c if 0x20 < ord(c) < 0x7f and c not in '"\\' else "?"
                        for c in name.decode("latin-1"))
        assert [(d["host"], d["allowed"], d["reason"]) for d in refused] == \
            [(shown, False, reason)]


def test_socks_port_0_and_refused_connection(egress, net):
    eg = egress(allow=["allowed.test", A_ADDR])
    s, rep = socks_name(eg, "allowed.test", 0)
    s.close()
    assert rep == 1
    assert eg.wait(host="allowed.test", port=0)["reason"] == "port 0"
    closed = socket.socket()
    closed.bind((A_ADDR, 0))
    port = closed.getsockname()[1]
    closed.close()
    s, rep = socks_name(eg, "allowed.test", port)
    s.close()
    assert rep == 5  # connection refused
    d = eg.wait(host="allowed.test", port=port)
    assert (d["allowed"], d["reason"]) == (True, "could not connect: Connection refused")


# ---- DNS ------------------------------------------------------------------------------------------------


def test_dns_answers_allowed_names(egress, net):
    eg = egress(allow=["allowed.test", A_ADDR, "dns-v4.test", "dns-v6.test"])
    assert resolve(eg, "allowed.test") == (NOERROR, [A_ADDR])
    assert resolve(eg, "ALLOWED.Test") == (NOERROR, [A_ADDR])
    assert resolve(eg, "dns-v4.test") == (NOERROR, ["203.0.113.10"])
    assert resolve(eg, "dns-v6.test", "AAAA") == (NOERROR, ["2001:db8::10"])
    d = eg.wait(host="dns-v6.test")
    assert (d["proto"], d["port"], d["address"], d["allowed"], d["rule"]) == \
        ("dns", 0, "2001:db8::10", True, "dns-v6.test")


@pytest.mark.parametrize("name, qtype", [
    ("allowed.test", "AAAA"),  # from the hosts file
    ("dns-v4.test", "AAAA"),   # from the name server
    ("dns-v6.test", "A"),
])
def test_dns_name_without_that_family_is_nodata(egress, net, name, qtype):
    """NOERROR without an answer, not a failure: clients give up on SERVFAIL."""
    eg = egress(allow=["allowed.test", A_ADDR, "dns-v4.test", "dns-v6.test"])
    assert resolve(eg, name, qtype) == (NOERROR, [])
    d = eg.wait(host=name)
    assert (d["allowed"], d["address"], d["reason"]) == (True, None, None)


@pytest.mark.parametrize("qtype, qclass, reason", [
    ("MX", 1, "question type 15: only A and AAAA are answered"),
    ("TXT", 1, "question type 16: only A and AAAA are answered"),
    ("ANY", 1, "question type 255: only A and AAAA are answered"),
    ("PTR", 1, "question type 12: only A and AAAA are answered"),
    ("A", 3, "question class 3: only IN is answered"),
])
def test_dns_other_questions_are_refused(egress, net, qtype, qclass, reason):
    eg = egress(allow=["dns-v4.test"])
    assert resolve(eg, "dns-v4.test") == (NOERROR, ["203.0.113.10"])
    asked = len(net["dns"].asked("dns-v4.test"))
    reply = dns_ask(eg, dns_query("dns-v4.test", qtype, qclass=qclass))
    assert dns_parse_answer(reply)[:2] == (REFUSED, [])
    d = eg.wait(host="dns-v4.test", allowed=False)
    assert (d["reason"], d["address"]) == (reason, None)
    assert len(net["dns"].asked("dns-v4.test")) == asked  # not passed on


def test_dns_refused_names(egress, net):
    eg = egress(allow=["*.corp.test", "dns-v4.test"], deny=["secret.corp.test"])
    for name, reason, rule in [
            ("unknown.test", "not in the allow list", None),
            ("secret.corp.test", "denied by rule", "secret.corp.test"),
            ("bad_name.test", "not a host name: not a host name (letters, digits, '-' and '.')",
             None)]:
        assert resolve(eg, name) == (REFUSED, [])
        d = eg.wait(host=name)
        assert (d["allowed"], d["reason"], d["rule"]) == (False, reason, rule)
        assert not net["dns"].asked(name)


def test_dns_answer_is_checked(egress, net):
    """Addresses the proxies would refuse are left out of an answer; with none left the
    question is refused."""
    eg = egress(allow=["mixed.test", "dns-private.test", "private.test"])
    assert resolve(eg, "mixed.test") == (NOERROR, ["203.0.113.7"])
    for name, qtype, reason in [
            ("dns-private.test", "A", "private address 192.168.1.1"),
            ("dns-private.test", "AAAA", "unique local (private) address fd00::1"),
            ("private.test", "A", "private address 10.1.2.3")]:
        assert resolve(eg, name, qtype) == (REFUSED, [])
        d = eg.wait(host=name, reason=reason)
        assert (d["allowed"], d["address"]) == (False, None)
    # a rule naming the address opens it, whatever its port
    eg = egress(allow=["private.test", "10.1.2.3:8080"])
    assert resolve(eg, "private.test") == (NOERROR, ["10.1.2.3"])


def test_dns_unresolvable_and_slow_names(egress, net):
    eg = egress(allow=["nx.test", "slow.test"], opts=["--resolve-timeout", "1"])
    assert resolve(eg, "nx.test") == (NXDOMAIN, [])
    assert eg.wait(host="nx.test")["reason"] == \
        "could not resolve: nodename nor servname provided, or not known"
    assert resolve(eg, "slow.test") == (SERVFAIL, [])
    assert eg.wait(host="slow.test")["reason"] == "could not resolve: timed out"


def dns_header(qid, flags=0x0100, qd=1, an=0):
    return struct.pack(">HHHHHH", qid, flags, qd, an, 0, 0)


QUESTION = dns_query("dns-v4.test")[12:]

MALFORMED = {
    "empty": b"",
    "one byte": b"\x00",
    "short header": dns_query("dns-v4.test")[:11],
    "header only": dns_header(1),
    "truncated name": dns_query("dns-v4.test")[:17],
    "no type": dns_query("dns-v4.test")[:-4],
    "pointer loop": dns_header(2) + b"\xc0\x0c\x00\x01\x00\x01",
    "pointer out": dns_header(3) + b"\xc0\xff\x00\x01\x00\x01",
    "label of 64": dns_header(4) + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01",
    "two questions": dns_header(5, qd=2) + QUESTION + QUESTION,
    "no question": dns_header(6, qd=0),
    "questions missing": dns_header(7, qd=60000) + QUESTION,
    "an answer": dns_header(8, flags=0x8180) + QUESTION,
    "answer count lies": dns_header(9, an=20) + QUESTION,
    "garbage": bytes(range(256)) * 4,
    "name too long": dns_header(10) + (b"\x3f" + b"a" * 63) * 4 + b"\x00\x00\x01\x00\x01",
}


@pytest.mark.parametrize("pkt", MALFORMED.values(), ids=MALFORMED.keys())
def test_dns_malformed_queries(egress, net, pkt):
    """No crash; no answer, or FORMERR, or REFUSED for a name that is not one (or, where
    the question itself is whole, its answer)."""
    eg = egress(allow=["dns-v4.test"])
    reply = dns_ask(eg, pkt, timeout=0.5)
    if reply is not None:
        rcode, addrs, qid = dns_parse_answer(reply)
        assert qid == struct.unpack(">H", pkt[:2])[0]
        assert (rcode, addrs) in ((FORMERR, []), (REFUSED, []), (NOERROR, ["203.0.113.10"]))
    assert resolve(eg, "dns-v4.test") == (NOERROR, ["203.0.113.10"])
    eg.wait(host="dns-v4.test", allowed=True)
    assert {d["host"] for d in eg.settle(0.1) if d["allowed"]} == {"dns-v4.test"}
    assert eg.proc.poll() is None


def test_dns_many_malformed_queries_at_once(egress, net):
    eg = egress(allow=["dns-v4.test"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(20):
            for pkt in MALFORMED.values():
                s.sendto(pkt, ("127.0.0.1", eg.dns))
    # the burst may overflow the socket's buffer: a client asks again, as resolvers do
    for _ in range(5):
        reply = dns_ask(eg, dns_query("dns-v4.test"), timeout=1)
        if reply:
            break
    assert dns_parse_answer(reply)[:2] == (NOERROR, ["203.0.113.10"])
    assert eg.proc.poll() is None


# ---- TLS: the ClientHello's server name ---------------------------------------------------


class TLSOrigin(Server):
    """A TLS server for secure.test on 127.0.0.1:443: answers "tls origin" to a request."""

    def __init__(self, d):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                        "/CN=secure.test", "-addext", "subjectAltName=DNS:secure.test",
                        "-keyout", d / "key.pem", "-out", d / "cert.pem"],
                       check=True, capture_output=True)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
        self.cert = ssl.PEM_cert_to_DER_cert((d / "cert.pem").read_text())
        super().__init__("127.0.0.1", 443)

    def handle(self, conn):
        conn.settimeout(TIMEOUT)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                buf = b""
                while b"\r\n\r\n" not in buf:
                    chunk = tls.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n"
                            b"\r\ntls origin\n")
        except OSError:
            pass


@pytest.fixture(scope="module")
def tls_origin(tmp_path_factory):
    try:
        srv = TLSOrigin(tmp_path_factory.mktemp("tls"))
    except OSError as e:
        pytest.skip(f"cannot listen on 127.0.0.1:443: {e}")
    yield srv
    srv.close()


class Hello:
    """A TLS client on a socket through memory BIOs, so that its first flight (the
    ClientHello) can be sent in pieces."""

    def __init__(self, sock, sni):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = sock
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname=sni)
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        self.hello = self.out.read()

    def send_hello(self, piece=None):
        if piece is None:
            self.sock.sendall(self.hello)
            return
        for i in range(0, len(self.hello), piece):
            self.sock.send(self.hello[i:i + piece])
            time.sleep(0.002)

    def finish(self):
        """Complete the handshake, ask, and return (the answer, the server's certificate)."""
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.out.read())
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed during the handshake")
                self.inc.write(data)
        self.tls.write(b"GET / HTTP/1.1\r\nHost: secure.test\r\n\r\n")
        self.sock.sendall(self.out.read())
        answer = b""
        while not answer.endswith(b"tls origin\n"):
            try:
                answer += self.tls.read(65536)
            except ssl.SSLWantReadError:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.inc.write(data)
        return answer, self.tls.getpeercert(binary_form=True)


def tunnel_443(eg, target="secure.test:443"):
    s, status, body = open_connect(eg, target)
    assert status == 200, body  # port 443: the tunnel opens before the ClientHello
    return s


@pytest.mark.parametrize("piece", [None, 1])
def test_443_clienthello_with_the_connect_host(egress, tls_origin, piece):
    """Whole, or one byte a write."""
    eg = egress(allow=["secure.test:443", "127.0.0.1:443"])
    conns = tls_origin.conns
    with tunnel_443(eg) as s:
        hello = Hello(s, "secure.test")
        hello.send_hello(piece)
        answer, cert = hello.finish()
    assert body_of(answer) == b"tls origin\n"
    assert cert == tls_origin.cert
    assert tls_origin.conns == conns + 1
    d = eg.wait(final=True)
    assert (d["host"], d["port"], d["address"], d["rule"]) == \
        ("secure.test", 443, "127.0.0.1", "secure.test:443")
    assert d["bytes_out"] > len(hello.hello)


@pytest.mark.parametrize("sni, reason", [
    ("other.test", "TLS server name other.test does not match CONNECT host secure.test"),
    ("secure.test.evil.test",
     "TLS server name secure.test.evil.test does not match CONNECT host secure.test"),
    (None, "TLS ClientHello without a server name (CONNECT host secure.test)"),
])
def test_443_clienthello_naming_another_host(egress, tls_origin, sni, reason):
    eg = egress(allow=["secure.test:443", "other.test:443", "127.0.0.1:443"])
    conns = tls_origin.conns
    with tunnel_443(eg) as s:
        Hello(s, sni).send_hello()
        assert recv_all(s) == b""
    d = eg.wait(allowed=False)
    assert (d["host"], d["reason"], d["rule"], d["final"]) == ("secure.test", reason, None, True)
    assert tls_origin.conns == conns  # the origin was never connected


def test_443_plain_bytes_are_refused(egress, tls_origin):
    eg = egress(allow=["secure.test:443", "127.0.0.1:443"])
    conns = tls_origin.conns
    with tunnel_443(eg) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: secure.test\r\n\r\n")
        assert recv_all(s) == b""
    d = eg.wait(allowed=False)
    assert d["reason"] == "not a TLS ClientHello on port 443"
    assert tls_origin.conns == conns


def test_443_tunnel_to_an_address(egress, tls_origin):
    """TLS names no address: a ClientHello through a tunnel to an address may carry no
    name, or the address itself, but no other name."""
    eg = egress(allow=["127.0.0.1:443"])
    for sni in (None, "127.0.0.1"):
        with tunnel_443(eg, "127.0.0.1:443") as s:
            hello = Hello(s, sni)
            hello.send_hello()
            assert body_of(hello.finish()[0]) == b"tls origin\n"
    with tunnel_443(eg, "127.0.0.1:443") as s:
        Hello(s, "secure.test").send_hello()
        assert recv_all(s) == b""
    assert eg.wait(allowed=False)["reason"] == \
        "TLS server name secure.test in a tunnel to the address 127.0.0.1"


def test_tls_on_another_port_is_held_to_the_same_rule(egress, net):
    """Not on 443 the origin is connected at once, but a ClientHello is still read before
    any byte of it goes on."""
    eg = egress(allow=["allowed.test", A_ADDR])
    n = len(net["a"].requests)
    s, status, _ = open_connect(eg, f"allowed.test:{net['port']}")
    assert status == 200
    with s:
        Hello(s, "evil.test").send_hello(1)
        assert recv_all(s) == b""
    d = eg.wait(allowed=False)
    assert d["reason"] == "TLS server name evil.test does not match CONNECT host allowed.test"
    assert (d["final"], d["bytes_out"]) == (True, 0)  # the tunnel's last report
    assert not eg.settle(0.1)[2:]
    assert len(net["a"].requests) == n


# ---- timeouts -----------------------------------------------------------------------------------


def test_idle_tunnel_is_closed(egress, net):
    eg = egress(allow=["allowed.test", A_ADDR], opts=["--idle-timeout", "1"])
    s, status, _ = open_connect(eg, f"allowed.test:{net['port']}")
    assert status == 200
    with s:
        start = time.monotonic()
        s.settimeout(5)
        assert s.recv(1) == b""
        assert 0.8 < time.monotonic() - start < 4
    d = eg.wait(final=True)
    assert (d["allowed"], d["bytes_out"], d["bytes_in"]) == (True, 0, 0)


def test_resolution_timeout(egress, net):
    eg = egress(allow=["slow.test"], opts=["--resolve-timeout", "1"])
    status, body = connect_status(eg, "slow.test:80")
    assert (status, body) == (504, b"warden egress: slow.test:80: could not resolve: timed out\n")
    assert eg.wait(host="slow.test")["reason"] == "could not resolve: timed out"


def test_decisions_of_open_connections_are_final_at_shutdown(egress, net):
    eg = egress(allow=["allowed.test", A_ADDR])
    s, status, _ = open_connect(eg, f"allowed.test:{net['port']}")
    assert status == 200
    eg.wait(final=False)
    eg.stop()
    s.close()
    assert eg.wait(final=True)["allowed"]
