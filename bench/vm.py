"""The vm backend's benchmarks of bench/run.py (docs/benchmarks.md, "The vm backend").

  baseline   QEMU's microvm booting Debian's stock kernel (bzImage) with a stock command
             line and a static init that powers off at once (warden's agent with
             warden.probe): the cost of a plain TCG boot on this machine; QEMU's peak RSS.
  cold       `warden run --isolation vm -- /bin/true` booting its guest (no snapshot);
             the time to a ready guest is the sandbox.start event's time (emitted once
             the guest's agent took the command) after warden was started.
  snapshot   the same, restoring the saved guest of its configuration (asked for with
             WARDEN_VM_SNAPSHOT=1 at the default 1 GiB of guest RAM).
  256M       cold and snapshot again with --memory 256M, where warden restores on its own.
  idle       host memory of idle guests (`warden supervise --isolation vm`), booted cold
             at 1 GiB and restored at 256 MiB: QEMU's RSS and PSS.
  pool       wardend with `--pool vmpool=2` (a stored policy: isolation vm, the small
             root, 256 MiB): a create served from the pool hands out a booted guest whose
             agent is ready; the time of that create, and of create -> exec `true` ->
             destroy, from a Python client over the unix socket (the pool refilled
             between trips).

The guests run a small root (busybox and /bin/true from the host), so that building an
image of the host's system directories is not what is measured. Runs alternate in a
shuffled order, as everywhere in bench/run.py.
"""
import json
import os

import daemon
import shutil
import statistics
import subprocess
import tempfile
import time

from common import percentile

KERNEL_DIR = os.environ.get("WARDEN_VM_DIR", "/var/cache/warden/vm")
COLD_TARGET_S = 2.0
READY_TARGET_MS = 100.0


def make_rootfs(bench_dir):
    root = os.path.join(bench_dir, "vm-root")
    if not os.path.isdir(root):
        for d in ("bin", "etc", "tmp"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        shutil.copy2(shutil.which("busybox"), os.path.join(root, "bin/busybox"))
        for a in ("sh", "true"):
            os.symlink("busybox", os.path.join(root, "bin", a))
        subprocess.run(["chmod", "-R", "a+rX", root], check=True)
    return root


def baseline_run(initrd, console):
    """One stock boot; {"hung": True} when it did not end within 20 s (killed)."""
    argv = ["qemu-system-x86_64", "-M", "microvm", "-accel", "tcg", "-cpu", "max",
            "-m", "1024M", "-nodefaults", "-no-user-config", "-display", "none",
            "-no-reboot", "-kernel", os.path.join(KERNEL_DIR, "vmlinuz"), "-initrd", initrd,
            "-append", "console=ttyS0 panic=-1 warden.probe", "-serial", f"file:{console}"]
    t = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    while time.monotonic() - t < 20:
        pid, _, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            with open(console, errors="replace") as f:
                ok = "probe ok" in f.read()
            return {"s": time.monotonic() - t, "rss_mib": ru.ru_maxrss / 1024, "ok": ok}
        time.sleep(0.005)
    p.kill()
    os.wait4(p.pid, 0)
    return {"hung": True}


def warden_run(warden, root, bench_dir, snapshot, memory="1G"):
    events = os.path.join(bench_dir, "vm-events.jsonl")
    env = dict(os.environ, WARDEN_VM_SNAPSHOT="1" if snapshot else "0")
    argv = [warden, "run", "-q", "--isolation", "vm", "--rootfs", root, "--memory", memory,
            "--events", events, "--", "/bin/true"]
    wall0 = time.time()
    t = time.monotonic()
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    total = time.monotonic() - t
    if r.returncode != 0:
        raise RuntimeError(f"warden run --isolation vm: {r.returncode}: {r.stderr.strip()}")
    ready = None
    with open(events) as f:
        for line in f:
            e = json.loads(line)
            if e["kind"] == "sandbox.start":
                ts = e["ts"].rstrip("Z")
                ready = time.mktime(time.strptime(ts.split(".")[0], "%Y-%m-%dT%H:%M:%S")) \
                    - time.timezone + float("0." + ts.split(".")[1]) - wall0
    return {"s": total, "ready_ms": ready * 1000 if ready is not None else None}


def idle_memory(warden, root, n, snapshot, memory):
    before = set(subprocess.run(["pgrep", "-f", "org.warden.agent"], capture_output=True,
                                text=True).stdout.split())
    infos = []
    try:
        for _ in range(n):
            r = subprocess.run([warden, "supervise", "-q", "--isolation", "vm", "--rootfs",
                                root, "--memory", memory], capture_output=True, text=True,
                               timeout=300,
                               env=dict(os.environ, WARDEN_VM_SNAPSHOT=str(int(snapshot))))
            if r.returncode != 0:
                raise RuntimeError(f"warden supervise --isolation vm: {r.stderr.strip()}")
            infos.append(json.loads(r.stdout))
        time.sleep(2)
        pids = set(subprocess.run(["pgrep", "-f", "org.warden.agent"], capture_output=True,
                                  text=True).stdout.split()) - before
        rss, pss = [], []
        for pid in pids:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            rss.append(int(fields["Rss"].split()[0]) / 1024)
            pss.append(int(fields["Pss"].split()[0]) / 1024)
        return {"guests": len(pids), "rss_mib": statistics.mean(rss),
                "pss_mib": statistics.mean(pss)}
    finally:
        for info in infos:
            subprocess.run([warden, "kill", info["sandbox"]], capture_output=True)


def pool_trips(warden, root, bench_dir, n):
    wardend = daemon.find_wardend(os.path.dirname(bench_dir))  # bench_dir: BUILD/bench
    if not wardend:
        return {"unavailable": "no wardend next to warden"}
    d_root = tempfile.mkdtemp(prefix="vm-pool-", dir=bench_dir)
    pols = os.path.join(d_root, "policies")
    os.mkdir(pols)
    with open(os.path.join(pols, "vmpool.yaml"), "w") as f:
        f.write(f"name: vmpool\nisolation: vm\nfilesystem: {{rootfs: {root}}}\n"
                "limits: {memory: 256M}\n")
    d = daemon.Daemon(wardend, warden, d_root, pools=[("vmpool", 2)],
                      extra=["--policies", pols])
    try:
        return daemon.round_trips(d, n, True, policy="vmpool", refill_s=120)
    finally:
        d.stop()
        shutil.rmtree(d_root, ignore_errors=True)


def measure_vm(warden, bench_dir, rounds, rng, progress):
    if not shutil.which("qemu-system-x86_64") or not os.path.exists(
            os.path.join(KERNEL_DIR, "vmlinux")):
        return {"unavailable": "no QEMU or guest kernel (scripts/setup.sh as root)"}
    root = make_rootfs(bench_dir)
    console = os.path.join(bench_dir, "vm-baseline-console.log")
    progress("vm: warm-up (image, initramfs and snapshot made once)")
    for memory in ("1G", "256M"):
        warden_run(warden, root, bench_dir, snapshot=True, memory=memory)
        warden_run(warden, root, bench_dir, snapshot=True, memory=memory)
    cache = os.environ.get("WARDEN_VM_CACHE", os.path.join(KERNEL_DIR, "images"))
    initrd = max((os.path.join(cache, f) for f in os.listdir(cache) if f.startswith("initrd-")),
                 key=os.path.getmtime)
    runs = {"baseline": [], "cold": [], "snapshot": [], "cold_256": [], "snapshot_256": []}
    for i in range(rounds):
        order = list(runs)
        rng.shuffle(order)
        for k in order:
            if k == "baseline":
                runs[k].append(baseline_run(initrd, console))
            else:
                runs[k].append(warden_run(warden, root, bench_dir, k.startswith("snapshot"),
                                          "256M" if k.endswith("256") else "1G"))
        progress(f"vm: round {i + 1}/{rounds}")
    progress("vm: idle guests")
    idle = idle_memory(warden, root, 3, False, "1G")
    idle_256 = idle_memory(warden, root, 3, True, "256M")
    progress("vm: wardend's pool")
    pool = pool_trips(warden, root, bench_dir, max(rounds, 5))


    def stats(xs):
        return {"median": statistics.median(xs), "p90": percentile(xs, 90), "n": len(xs)}

    base_ok = [r for r in runs["baseline"] if not r.get("hung")]
    return {
        "accel": "tcg" if not os.access("/dev/kvm", os.R_OK | os.W_OK) else "kvm (if probed)",
        "baseline_s": stats([r["s"] for r in base_ok]) if base_ok else None,
        "baseline_hung": len(runs["baseline"]) - len(base_ok),
        "baseline_rss_mib": statistics.median(r["rss_mib"] for r in base_ok) if base_ok else None,
        "cold_s": stats([r["s"] for r in runs["cold"]]),
        "cold_ready_ms": stats([r["ready_ms"] for r in runs["cold"]]),
        "snapshot_s": stats([r["s"] for r in runs["snapshot"]]),
        "snapshot_ready_ms": stats([r["ready_ms"] for r in runs["snapshot"]]),
        "cold_256_s": stats([r["s"] for r in runs["cold_256"]]),
        "snapshot_256_s": stats([r["s"] for r in runs["snapshot_256"]]),
        "snapshot_256_ready_ms": stats([r["ready_ms"] for r in runs["snapshot_256"]]),
        "idle": idle,
        "idle_256_restored": idle_256,
        "pool": pool,
    }


def vm_targets(v):
    if "unavailable" in v:
        return {}
    return {
        "vm_cold_true_s": {"value": v["cold_s"]["median"], "target": f"<= {COLD_TARGET_S}",
                           "met": v["cold_s"]["median"] <= COLD_TARGET_S},
        "vm_ready_from_snapshot_ms": {
            "value": v["snapshot_256_ready_ms"]["median"], "target": f"<= {READY_TARGET_MS:g}",
            "met": v["snapshot_256_ready_ms"]["median"] <= READY_TARGET_MS},
        **({} if "unavailable" in v["pool"] else {"vm_ready_from_pool_ms": {
            "value": v["pool"]["create_p50_ms"], "target": f"<= {READY_TARGET_MS:g}",
            "met": v["pool"]["create_p50_ms"] <= READY_TARGET_MS}}),
    }


def vm_report(v):
    if "unavailable" in v:
        return [f"vm backend: unavailable: {v['unavailable']}"]
    b = v["baseline_s"]
    lines = [f"vm backend ({v['accel']})",
             f"  baseline boot (stock kernel, init powers off)  "
             + (f"{b['median']:.2f} s median, p90 {b['p90']:.2f} s, QEMU RSS "
                f"{v['baseline_rss_mib']:.0f} MiB" if b else "no run finished")
             + (f"; {v['baseline_hung']} hung past 20 s" if v["baseline_hung"] else ""),
             f"  cold run /bin/true                              {v['cold_s']['median']:.2f} s "
             f"median, p90 {v['cold_s']['p90']:.2f} s (guest ready after "
             f"{v['cold_ready_ms']['median']:.0f} ms)",
             f"  run /bin/true from a snapshot                   "
             f"{v['snapshot_s']['median']:.3f} s median, p90 {v['snapshot_s']['p90']:.3f} s "
             f"(guest ready after {v['snapshot_ready_ms']['median']:.0f} ms)",
             f"  --memory 256M: cold / from a snapshot           "
             f"{v['cold_256_s']['median']:.2f} s / {v['snapshot_256_s']['median']:.3f} s "
             f"(ready after {v['snapshot_256_ready_ms']['median']:.0f} ms)",
             f"  idle guest on the host, 1G booted cold          {v['idle']['rss_mib']:.0f} MiB "
             f"RSS, {v['idle']['pss_mib']:.0f} MiB PSS ({v['idle']['guests']} guests)",
             f"  idle guest on the host, 256M restored           "
             f"{v['idle_256_restored']['rss_mib']:.0f} MiB RSS, "
             f"{v['idle_256_restored']['pss_mib']:.0f} MiB PSS"]
    p = v["pool"]
    lines.append("  wardend pool, 256M: " + (
        f"unavailable: {p['unavailable']}" if "unavailable" in p else
        f"create (a ready guest) {p['create_p50_ms']:.2f} ms p50, {p['create_p99_ms']:.2f} ms "
        f"p99; create -> exec true -> destroy {p['p50_ms']:.1f} ms p50 ({p['n']} trips)"))
    return lines
