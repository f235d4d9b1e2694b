"""A stand-in for wardend's HTTP API (docs/api.yaml), for testing clients without root.

It is not a sandbox: "sandboxes" are directories under a temporary root, commands run on
the host with that directory as their working directory, and file paths are mapped under
it. What it reproduces faithfully is the wire format: statuses, error bodies, buffered and
streamed exec (NDJSON and SSE, chunked), files, pause/resume, logs and events.

    python3 fake_wardend.py SOCKET        # serve until killed
"""
import datetime
import http.server
import json
import os
import secrets
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
import urllib.parse


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class State:
    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="fake-wardend-")
        self.boxes = {}
        self.lock = threading.Lock()
        self.max_sandboxes = 64


class ApiError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: State = None

    def log_message(self, *args):
        pass

    def address_string(self):
        return "unix"

    # ---- plumbing ---------------------------------------------------------------------

    def send_json(self, status, obj):
        body = json.dumps(obj).encode() if obj is not None else b""
        self.send_response(status)
        if obj is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def start_chunked(self, ctype):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, data):
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def end_chunked(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > 8 << 20:
            raise ApiError(413, "payload_too_large", "request body over 8 MiB")
        return self.rfile.read(n) if n else b""

    def json_body(self):
        raw = self.body()
        try:
            obj = json.loads(raw or b"{}")
        except ValueError as e:
            raise ApiError(400, "invalid_json", f"request body: {e}")
        if not isinstance(obj, dict):
            raise ApiError(400, "invalid_json", "request body: expected an object")
        return obj

    def box(self, sid):
        b = self.state.boxes.get(sid)
        if b is None:
            raise ApiError(404, "not_found", f"sandbox {sid}: not found")
        return b

    def host_path(self, b, q):
        p = q.get("path", [None])[0]
        if not p or not p.startswith("/"):
            raise ApiError(400, "invalid_path", "path: must be an absolute path")
        real = os.path.realpath(os.path.join(b["dir"], p.lstrip("/")))
        if not (real + "/").startswith(b["dir"] + "/"):
            raise ApiError(400, "invalid_path", f"path {p}: leaves the sandbox")
        return p, real

    def info(self, p, real):
        st = os.lstat(real)
        import stat as S
        t = ("dir" if S.S_ISDIR(st.st_mode) else "file" if S.S_ISREG(st.st_mode)
             else "symlink" if S.S_ISLNK(st.st_mode) else "other")
        return {"path": p, "name": os.path.basename(p.rstrip("/")) or "/", "type": t,
                "size": st.st_size, "mode": "%04o" % S.S_IMODE(st.st_mode),
                "mtime": datetime.datetime.fromtimestamp(
                    st.st_mtime, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}

    def public(self, b):
        return {k: b[k] for k in ("id", "policy", "state", "created_at", "expires_at",
                                  "labels", "from_pool")}

    # ---- routing ----------------------------------------------------------------------

    def handle_any(self, method):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        parts = [p for p in u.path.split("/") if p]
        try:
            try:
                self.route(method, parts, q)
            except ApiError as e:
                self.send_json(e.status, {"error": {"code": e.code, "message": e.message}})
            except FileNotFoundError:
                self.send_json(404, {"error": {"code": "not_found", "message":
                                               f"path {q.get('path', ['?'])[0]}: not found"}})
            except (BrokenPipeError, ConnectionResetError):
                raise
            except OSError as e:
                self.send_json(400, {"error": {"code": "os_error", "message": e.strerror}})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = lambda self: self.handle_any("GET")  # noqa: E731
    do_POST = lambda self: self.handle_any("POST")  # noqa: E731
    do_PUT = lambda self: self.handle_any("PUT")  # noqa: E731
    do_DELETE = lambda self: self.handle_any("DELETE")  # noqa: E731

    def route(self, m, parts, q):
        st = self.state
        if parts == ["healthz"]:
            return self.send_json(200, {"ok": True})
        if parts[:2] != ["v1", "sandboxes"]:
            raise ApiError(404, "not_found", f"{self.path}: no such route")
        rest = parts[2:]
        if not rest and m == "POST":
            return self.create()
        if not rest and m == "GET":
            boxes = list(st.boxes.values())
            for lab in q.get("label", []):
                k, _, v = lab.partition("=")
                boxes = [b for b in boxes if b["labels"].get(k) == v]
            return self.send_json(200, {"sandboxes": [self.public(b) for b in boxes]})
        b = self.box(rest[0])
        sub = rest[1:]
        if not sub and m == "GET":
            return self.send_json(200, self.public(b))
        if not sub and m == "DELETE":
            st.boxes.pop(b["id"], None)
            shutil.rmtree(b["dir"], ignore_errors=True)
            b["gone"].set()
            return self.send_json(204, None)
        if sub == ["exec"] and m == "POST":
            return self.exec(b)
        if len(sub) == 3 and sub[0] == "exec" and sub[2] == "kill" and m == "POST":
            proc = b["procs"].get(int(sub[1]))
            if proc is None:
                raise ApiError(404, "not_found", f"exec {sub[1]}: not found")
            sig = self.json_body().get("signal", 9)
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            return self.send_json(204, None)
        if sub in (["pause"], ["resume"]) and m == "POST":
            want = "paused" if sub == ["pause"] else "running"
            if b["state"] == want:
                raise ApiError(409, "conflict", f"sandbox {b['id']}: already {want}")
            b["state"] = want
            return self.send_json(200, self.public(b))
        if sub == ["stats"] and m == "GET":
            return self.send_json(200, {"sandbox": b["id"], "memory_current": 1 << 20,
                                        "pids": 1, "cpu_usec": 0, "frozen": False})
        if sub == ["logs"] and m == "GET":
            return self.send_json(200, {"execs": b["logs"]})
        if sub == ["events"] and m == "GET":
            self.start_chunked("text/event-stream")
            for ev in b["events"]:
                self.chunk(b"event: %s\ndata: %s\n\n" % (ev["kind"].encode(),
                                                          json.dumps(ev).encode()))
            b["gone"].wait(timeout=30)
            self.chunk(b'event: sandbox.end\ndata: {"kind": "sandbox.end"}\n\n')
            return self.end_chunked()
        if sub and sub[0] == "files":
            return self.files(b, m, sub[1:], q)
        raise ApiError(404, "not_found", f"{m} {self.path}: no such route")

    def create(self):
        st = self.state
        req = self.json_body()
        if "policy" in req and "policy_yaml" in req:
            raise ApiError(400, "invalid_field", "policy, policy_yaml: give exactly one")
        policy = req.get("policy", "default" if "policy_yaml" not in req else "inline")
        if policy not in ("default", "strict", "inline"):
            raise ApiError(400, "invalid_field", f"policy: no policy named \"{policy}\"")
        ttl = req.get("ttl", 3600)
        if not isinstance(ttl, int) or ttl <= 0:
            raise ApiError(400, "invalid_field", "ttl: must be an integer > 0")
        if len(st.boxes) >= st.max_sandboxes:
            raise ApiError(429, "quota_exceeded", "max-sandboxes reached")
        sid = secrets.token_hex(8)
        d = os.path.join(st.root, sid)
        os.makedirs(os.path.join(d, "tmp"))
        b = {"id": sid, "policy": policy, "state": "running", "created_at": now(),
             "expires_at": now(), "labels": req.get("labels") or {}, "from_pool": False,
             "env": req.get("env") or {}, "dir": d, "procs": {}, "logs": [], "next": 1,
             "events": [{"kind": "sandbox.start", "sandbox": sid}],
             "gone": threading.Event()}
        st.boxes[sid] = b
        self.send_json(201, self.public(b))

    def exec(self, b):
        req = self.json_body()
        cmd = req.get("cmd")
        if not isinstance(cmd, list) or not cmd:
            raise ApiError(400, "invalid_field", "cmd: must be a non-empty array of strings")
        env = dict(os.environ, **b["env"], **(req.get("env") or {}))
        wd = req.get("workdir") or "/"
        cwd = os.path.join(b["dir"], wd.lstrip("/"))
        eid = b["next"]
        b["next"] += 1
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
        except OSError as e:
            proc = None
            err = str(e)
        log = {"exec_id": eid, "cmd": cmd, "exit_code": None, "started_at": now(),
               "ended_at": None}
        b["logs"].append(log)
        b["events"].append({"kind": "exec", "argv": cmd})
        if proc:
            b["procs"][eid] = proc
            stdin = req.get("stdin")
            threading.Thread(target=self.feed, args=(proc, stdin), daemon=True).start()
        timer = None
        timed_out = []
        if proc and req.get("timeout"):
            def expire():
                timed_out.append(True)
                os.killpg(proc.pid, 9)
            timer = threading.Timer(req["timeout"], expire)
            timer.start()
        accept = self.headers.get("Accept", "")
        mode = ("ndjson" if "application/x-ndjson" in accept else
                "sse" if "text/event-stream" in accept else "json")
        out = {"stdout": [], "stderr": []}

        def emit(kind, obj):
            if mode == "ndjson":
                self.chunk(json.dumps(dict(obj, type=kind)).encode() + b"\n")
            elif mode == "sse":
                self.chunk(b"event: %s\ndata: %s\n\n" % (kind.encode(),
                                                          json.dumps(obj).encode()))
            elif kind in out:
                out[kind].append(obj["data"])

        if mode != "json":
            self.start_chunked("application/x-ndjson" if mode == "ndjson"
                               else "text/event-stream")
        emit("started", {"exec_id": eid, "pid": proc.pid if proc else 0})
        if proc:
            lock = threading.Lock()

            def pump(f, kind):
                for data in iter(lambda: os.read(f.fileno(), 4096), b""):
                    with lock:
                        emit(kind, {"data": data.decode("utf-8", "replace")})
            ts = [threading.Thread(target=pump, args=(proc.stdout, "stdout")),
                  threading.Thread(target=pump, args=(proc.stderr, "stderr"))]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            rc = proc.wait()
            code = rc if rc >= 0 else 128 - rc
            proc.stdout.close()
            proc.stderr.close()
        else:
            emit("stderr", {"data": err + "\n"})
            code = 127
        if timer:
            timer.cancel()
        log["exit_code"], log["ended_at"] = code, now()
        ex = {"exit_code": code, "timed_out": bool(timed_out)}
        emit("exit", ex)
        if mode == "json":
            self.send_json(200, {"exec_id": eid, "stdout": "".join(out["stdout"]),
                                 "stderr": "".join(out["stderr"]), **ex})
        else:
            self.end_chunked()

    @staticmethod
    def feed(proc, stdin):
        try:
            if stdin:
                proc.stdin.write(stdin.encode())
            proc.stdin.close()
        except OSError:
            pass

    def files(self, b, m, sub, q):
        p, real = self.host_path(b, q)
        if not sub and m == "GET":
            if os.path.isdir(real):
                raise ApiError(400, "is_directory", f"path {p}: is a directory")
            with open(real, "rb") as f:
                data = f.read()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return self.wfile.write(data)
        if not sub and m == "PUT":
            data = self.body()
            mode = int(q.get("mode", ["0644"])[0], 8)
            with open(real, "wb") as f:
                f.write(data)
            os.chmod(real, mode)
            return self.send_json(201, self.info(p, real))
        if not sub and m == "DELETE":
            if os.path.isdir(real) and not os.path.islink(real):
                if q.get("recursive", [""])[0] == "true":
                    shutil.rmtree(real)
                else:
                    os.rmdir(real)
            else:
                os.unlink(real)
            return self.send_json(204, None)
        if sub == ["list"] and m == "GET":
            entries = [self.info(os.path.join(p, n), os.path.join(real, n))
                       for n in sorted(os.listdir(real))]
            return self.send_json(200, {"entries": entries})
        if sub == ["stat"] and m == "GET":
            return self.send_json(200, self.info(p, real))
        if sub == ["mkdir"] and m == "POST":
            if q.get("parents", [""])[0] == "true":
                os.makedirs(real, exist_ok=True)
            elif os.path.exists(real):
                raise ApiError(409, "exists", f"path {p}: exists")
            else:
                os.mkdir(real)
            return self.send_json(201, self.info(p, real))
        raise ApiError(404, "not_found", f"{m} {self.path}: no such route")


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(path):
    """Start serving on unix socket ``path`` in a thread; return the server."""
    if os.path.exists(path):
        os.unlink(path)
    handler = type("H", (Handler,), {"state": State()})
    srv = Server(path, handler)
    srv.state = handler.state  # srv.state.root: remove it when done
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


if __name__ == "__main__":
    serve(sys.argv[1])
    threading.Event().wait()
