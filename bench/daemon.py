"""The daemon benchmarks of bench/run.py (docs/benchmarks.md, "The daemon"): a real wardend
on a private socket and state directory, driven through its HTTP API.

- round trip: create -> exec `true` -> destroy, cold and served from a warm pool;
- idle sandboxes: N alive at once, the host memory each one costs;
- load: C concurrent clients doing create / exec / files / destroy for S seconds, then
  the host's fds, mounts, cgroups and processes compared with before;
- restart: the same load with wardend killed with SIGKILL in the middle and restarted:
  no sandbox lost, the audit log intact.
"""
import glob
import http.client
import json
import os
import signal
import socket

import subprocess
import tempfile
import threading
import time

from common import percentile

IDLE_MEMORY_TARGET_MIB = 2.0


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout=120):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Client:
    def __init__(self, sock):
        self.sock = sock
        self.conn = None

    def call(self, method, path, body=None, raw=None, headers=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        for attempt in (0, 1):
            try:
                if self.conn is None:
                    self.conn = UnixHTTP(self.sock)
                self.conn.request(method, path, body=data, headers=headers or {})
                r = self.conn.getresponse()
                payload = r.read()
                return r.status, payload
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def process_argvs():
    """(pid, argv as bytes) of every process whose command line can be read."""
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                yield int(p), f.read().split(b"\0")
        except OSError:
            continue


def find_wardend(build):
    for p in ("wardend", "src/daemon/wardend"):
        path = os.path.join(build, p)
        if os.path.exists(path):
            return path
    return None


class Daemon:
    def __init__(self, wardend, warden, root, pools=(), extra=()):
        self.wardend, self.warden, self.root = wardend, warden, root
        self.extra = list(extra)
        self.sock = os.path.join(root, "wardend.sock")
        self.state = os.path.join(root, "state")
        self.pools = pools
        self.p = None
        self.start()

    def start(self):
        argv = [self.wardend, "--socket", self.sock, "--state-dir", self.state,
                "--warden", self.warden, "--max-sandboxes", "5000",
                "--audit-log", os.path.join(self.root, "audit.log"),
                "--audit-key", os.path.join(self.root, "audit.key")]
        for pol, n in self.pools:
            argv += ["--pool", f"{pol}={n}"]
        argv += self.extra
        env = dict(os.environ)
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=open(os.path.join(self.root, "wardend.err"), "ab"),
                                  env=env)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                if Client(self.sock).call("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("wardend did not start: " +
                           open(os.path.join(self.root, "wardend.err")).read()[-2000:])

    def kill9(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        # wardend leaves its sandboxes running when it stops (a restart adopts them): the
        # pool's, which no client destroys, end with their supervisors here.
        for pid, argv in process_argvs():
            if b"supervise" in argv and any(self.root.encode() in a for a in argv):
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass


def create(cl, **kw):
    st, body = cl.call("POST", "/v1/sandboxes", {"policy": "default", **kw})
    if st != 201:
        raise RuntimeError(f"create: {st} {body[:200]!r}")
    return json.loads(body)


def run(cl, sid, cmd, stdin=None):
    req = {"cmd": cmd}
    if stdin is not None:
        req["stdin"] = stdin
    st, body = cl.call("POST", f"/v1/sandboxes/{sid}/exec", req,
                       headers={"Accept": "application/json"})
    if st != 200:
        raise RuntimeError(f"exec: {st} {body[:200]!r}")
    return json.loads(body)


def destroy(cl, sid):
    st, body = cl.call("DELETE", f"/v1/sandboxes/{sid}")
    if st != 204:
        raise RuntimeError(f"destroy: {st} {body[:200]!r}")


def round_trips(d, n, pooled, policy="default", refill_s=10):
    cl = Client(d.sock)
    times, daemon_create = [], []
    for _ in range(n):
        if pooled:  # let the pool refill, so that each create is served from it
            deadline = time.monotonic() + refill_s
            while time.monotonic() < deadline and not pool_ready(d):
                time.sleep(0.01)
        t0 = time.perf_counter()
        sb = create(cl, policy=policy)
        t1 = time.perf_counter()
        r = run(cl, sb["id"], ["true"])
        destroy(cl, sb["id"])
        t2 = time.perf_counter()
        if r["exit_code"] != 0 or sb.get("from_pool", False) != pooled:
            raise RuntimeError(f"round trip: {sb} {r}")
        times.append((t2 - t0) * 1000)
        daemon_create.append((t1 - t0) * 1000)
    return {"n": n, "p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99),
            "create_p50_ms": percentile(daemon_create, 50),
            "create_p99_ms": percentile(daemon_create, 99)}


def pool_ready(d):
    st, body = Client(d.sock).call("GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith("wardend_pool_ready") and not line.endswith(" 0"):
            return True
    return False


def meminfo_used_kib():
    m = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":")
            m[k] = int(v.split()[0])
    return m["MemTotal"] - m["MemAvailable"]


def stray_sandboxes(listed):
    """Supervisors alive that wardend does not list (a sandbox it lost track of)."""
    stray = 0
    for _, argv in process_argvs():
        if len(argv) > 1 and argv[0].endswith(b"warden") and argv[1] == b"supervise":
            stray += 1
    return max(0, stray - len(listed))


def warden_processes():
    """Processes of warden (supervisors, sandbox inits and what runs in them): those whose
    executable is a warden binary, and their descendants."""
    parent, exe = {}, {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                parent[int(p)] = int(f.read().rsplit(")", 1)[1].split()[1])
            exe[int(p)] = os.path.basename(os.readlink(f"/proc/{p}/exe"))
        except OSError:
            continue
    roots = {p for p, e in exe.items() if e == "warden"}
    n = 0
    for p in parent:
        q = p
        while q in parent and q not in roots and q > 1:
            q = parent[q]
        n += q in roots
    return n


def host_counts(d):
    """fds of wardend, mounts, warden cgroups, processes, control sockets."""
    def count_dirs(root):
        n = 0
        for _, dirs, _ in os.walk(root):
            n += len(dirs)
        return n
    fds = len(os.listdir(f"/proc/{d.p.pid}/fd")) if d.p and d.p.poll() is None else -1
    with open("/proc/self/mountinfo") as f:
        mounts = sum(1 for _ in f)
    return {"wardend_fds": fds, "mounts": mounts,
            "cgroups": sum(count_dirs(d) for d in glob.glob("/sys/fs/cgroup/*/warden") +
                           glob.glob("/sys/fs/cgroup/*/*/warden") + ["/sys/fs/cgroup/warden"]
                           if os.path.isdir(d)),
            "warden_processes": warden_processes(),
            "control_sockets": len(os.listdir("/run/warden/sandboxes"))
            if os.path.isdir("/run/warden/sandboxes") else 0}


def idle(d, n, progress):
    cl = Client(d.sock)
    time.sleep(1)
    before = meminfo_used_kib()
    ids = []
    t0 = time.monotonic()
    for i in range(n):
        ids.append(create(cl)["id"])
        if (i + 1) % 100 == 0:
            progress(f"daemon: {i + 1} idle sandboxes")
    made_s = time.monotonic() - t0
    time.sleep(2)
    after = meminfo_used_kib()
    listed = json.loads(cl.call("GET", "/v1/sandboxes")[1])["sandboxes"]
    alive = sum(1 for s in listed if s["state"] == "running")
    for sid in ids:
        destroy(cl, sid)
    per_mib = (after - before) / n / 1024
    return {"n": n, "alive": alive, "create_s": round(made_s, 1),
            "host_memory_per_sandbox_mib": round(per_mib, 3),
            "target_mib": IDLE_MEMORY_TARGET_MIB, "met": per_mib <= IDLE_MEMORY_TARGET_MIB}


def worker(d, stop, stats, lock, created):
    cl = Client(d.sock)
    while not stop.is_set():
        try:
            sb = create(cl)
            with lock:
                created[sb["id"]] = "created"
            r = run(cl, sb["id"], ["sh", "-c", "cat > /tmp/in; wc -c < /tmp/in"], "x" * 1000)
            ok = r["exit_code"] == 0 and r["stdout"].strip() == "1000"
            st, _ = cl.call("PUT", f"/v1/sandboxes/{sb['id']}/files?path=/tmp/f", raw=b"y" * 4096)
            st2, data = cl.call("GET", f"/v1/sandboxes/{sb['id']}/files?path=/tmp/f")
            ok = ok and st == 201 and st2 == 200 and data == b"y" * 4096
            with lock:  # from here on, its absence may be this client's own doing
                created[sb["id"]] = "destroying"
            destroy(cl, sb["id"])
            with lock:
                created[sb["id"]] = "destroyed"
                stats["cycles"] += 1
                if not ok:
                    stats["errors"] += 1
                    stats["last_error"] = f"{r} {st} {st2}"
        except (OSError, http.client.HTTPException) as e:
            # wardend unreachable (refused, reset): what a restart costs clients
            with lock:
                stats["unreachable"] += 1
                stats["last_unreachable"] = str(e)[:300]
            time.sleep(0.05)
        except Exception as e:  # counted, reported
            with lock:
                stats["errors"] += 1
                stats["last_error"] = str(e)[:300]
            time.sleep(0.05)


def load(d, clients, seconds, kill_at=None):
    cl = Client(d.sock)
    destroy(cl, create(cl)["id"])  # warm: the state database's files are open
    time.sleep(1)
    before = host_counts(d)
    stop, lock = threading.Event(), threading.Lock()
    stats = {"cycles": 0, "errors": 0, "last_error": None, "unreachable": 0,
             "last_unreachable": None}
    created = {}
    threads = [threading.Thread(target=worker, args=(d, stop, stats, lock, created))
               for _ in range(clients)]
    for t in threads:
        t.start()
    restarted = None
    if kill_at is not None:
        time.sleep(kill_at)
        t0 = time.monotonic()
        d.kill9()
        d.start()
        restarted = round((time.monotonic() - t0) * 1000, 1)
        time.sleep(max(0, seconds - kill_at))
    else:
        time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    cl = Client(d.sock)
    listed = {s["id"] for s in json.loads(cl.call("GET", "/v1/sandboxes")[1])["sandboxes"]}
    # Acknowledged (201) and never asked to go: wardend must still know it.
    lost = [sid for sid, state in created.items() if state == "created" and sid not in listed]
    stray = stray_sandboxes(listed)
    for sid in listed:
        destroy(cl, sid)
    time.sleep(2)
    after = host_counts(d)
    return {"clients": clients, "seconds": seconds, **stats, "lost": len(lost),
            "lost_ids": lost[:5], "stray_supervisors": stray,
            "restart_ms": restarted, "before": before, "after": after,
            "back_to_baseline": all(after[k] <= before[k] for k in before
                                    if k != "wardend_fds" or kill_at is None)}


def audit_intact(warden, root):
    r = subprocess.run([warden, "audit", "verify", os.path.join(root, "audit.log"), "--key",
                        os.path.join(root, "audit.key.pub")], capture_output=True, text=True)
    return r.returncode == 0, (r.stdout + r.stderr).strip().splitlines()[:1]


def measure_daemon(build, warden, n_trips, n_idle, clients, seconds, progress):
    wardend = find_wardend(build)
    if not wardend:
        return {"unavailable": "wardend is not built"}
    res = {}
    with tempfile.TemporaryDirectory(prefix="warden-bench-daemon-") as root:
        d = Daemon(wardend, warden, root)
        try:
            progress("daemon: cold round trips")
            res["cold"] = round_trips(d, n_trips, pooled=False)
            progress(f"daemon: {n_idle} idle sandboxes")
            res["idle"] = idle(d, n_idle, progress)
            progress(f"daemon: {clients} clients for {seconds} s")
            res["load"] = load(d, clients, seconds)
            progress("daemon: the same, killed with SIGKILL and restarted midway")
            res["restart"] = load(d, clients, seconds, kill_at=seconds / 2)
            ok, first = audit_intact(warden, root)
            res["restart"]["audit_intact"] = ok
            res["restart"]["audit_verify"] = first
        finally:
            d.stop()
    with tempfile.TemporaryDirectory(prefix="warden-bench-daemon-") as root:
        d = Daemon(wardend, warden, root, pools=[("default", 4)])
        try:
            progress("daemon: pooled round trips")
            res["pooled"] = round_trips(d, n_trips, pooled=True)
        finally:
            d.stop()
    return res


def daemon_targets(r):
    if "unavailable" in r:
        return {}
    return {
        "daemon_idle_mib_per_sandbox": {"value": r["idle"]["host_memory_per_sandbox_mib"],
                                        "target": f"<= {IDLE_MEMORY_TARGET_MIB}",
                                        "met": r["idle"]["met"]},
        "daemon_load_errors": {"value": r["load"]["errors"] + r["load"]["unreachable"],
                               "target": "0",
                               "met": r["load"]["errors"] + r["load"]["unreachable"] == 0
                               and r["load"]["back_to_baseline"]},
        "daemon_restart_lost": {"value": r["restart"]["lost"], "target": "0",
                                "met": r["restart"]["lost"] == 0 and r["restart"]["errors"] == 0
                                and r["restart"]["audit_intact"]},
    }


def daemon_report(r):
    if "unavailable" in r:
        return [f"Daemon: unavailable ({r['unavailable']})"]
    out = ["Daemon (wardend, through its API on a unix socket)"]
    for k in ("cold", "pooled"):
        t = r[k]
        out.append(f"  create -> exec true -> destroy, {k:<6}: p50 {t['p50_ms']:7.2f} ms  "
                   f"p99 {t['p99_ms']:7.2f} ms   (create alone p50 {t['create_p50_ms']:.3f} "
                   f"p99 {t['create_p99_ms']:.3f} ms)")
    i = r["idle"]
    out.append(f"  {i['n']} idle sandboxes ({i['alive']} alive, made in {i['create_s']} s): "
               f"{i['host_memory_per_sandbox_mib']} MiB of host memory each "
               f"(target <= {i['target_mib']})")
    for k in ("load", "restart"):
        x = r[k]
        extra = (f", wardend back in {x['restart_ms']} ms, lost {x['lost']}, audit "
                 f"{'intact' if x.get('audit_intact') else 'NOT intact'}"
                 if k == "restart" else "")
        out.append(f"  {x['clients']} clients x {x['seconds']} s{' (SIGKILL midway)' if k == 'restart' else ''}: "
                   f"{x['cycles']} cycles, {x['errors']} errors, {x['unreachable']} requests "
                   f"refused while wardend was unreachable{extra}; "
                   f"baseline {'restored' if x['back_to_baseline'] else 'NOT restored'} "
                   f"{x['before']} -> {x['after']}")
        if x["last_error"]:
            out.append(f"    last error: {x['last_error']}")
    return out


if __name__ == "__main__":
    import sys
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    r = measure_daemon(build, os.path.join(build, "warden"), 50, 100, 8, 10,
                       lambda m: print(m, flush=True))
    print(json.dumps(r, indent=1))
    print("\n".join(daemon_report(r)))
