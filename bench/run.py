#!/usr/bin/python3
"""warden's benchmarks against bubblewrap, runc and firejail, measured in one run.

usage: bench/run.py [--build DIR] [--quick] [--audit-only] [--telemetry-only] [--net-only]
       [--daemon-only] [--vm-only]
       [--seed S] [--out FILE]
       (--help: the rest)

What it measures (docs/benchmarks.md says why and how to read the results):
  cold start   `warden run -- /bin/true` (default policy) against bwrap, runc and firejail
               doing comparable work, and plain /bin/true; median and p90 latency, ratios.
  throughput   sequential `warden run -- /bin/true` per second.
  memory       peak RSS (VmHWM) of the `warden run` process itself while `sleep 1` runs.
  slowdown     a syscall-heavy C loop and a Python os.stat loop, inside the default
               policy and unsandboxed, timed from inside, in alternating short chunks.
  audit log    records appended per second to the audit log (bench/audit_bench.c, linked
               with libwarden): in groups per commit, and one commit (fdatasync) each;
               verification speed. --audit-only measures just this.
  telemetry    the eBPF telemetry's overhead on a syscall-heavy Python loop, a C loop and
               `make -j2` of a generated 200-file C project, watched vs not watched (the
               same kind of fresh cgroup, build/tests/telwatch); its cost to processes
               outside any watched group; the exec and connect rates one watched group
               reaches and whether any event was lost; attach and first-load costs.
               --telemetry-only measures just this.
  network      bulk transfer (--net-bytes per transfer) through proxy mode's CONNECT and
               SOCKS5 tunnels against a direct loopback transfer; the latency the model
               gateway adds to non-streaming calls and to a stream's first token, p50 and
               p99 (bench/net.py, bench/netbench.c). --net-only measures just this.
  daemon       wardend through its API: create -> exec -> destroy cold and pooled; 1000
               idle sandboxes and the host memory each costs; 50 clients for 2 minutes,
               then again with wardend killed (SIGKILL) and restarted midway
               (bench/daemon.py). --daemon-only measures just this.
  vm backend   cold `warden run --isolation vm -- /bin/true` against a stock QEMU+kernel
               boot measured alongside, the same from a saved guest (snapshot), time to
               a ready guest, host memory per idle guest (bench/vm.py). --vm-only
               measures just this.

The contenders are interleaved in rounds, in a shuffled order each round, so that the
machine's drift (other load, frequency, caches) hits all of them alike. Only Debian's
packages are used (scripts/setup.sh installs them); helper programs are compiled here with
gcc into DIR/bench. Results: a table on stdout and DIR/bench-results.json.
"""
import argparse
import datetime
import glob
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time

import daemon
import net
import vm
from common import Looper, percentile, take_turns


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# The targets warden aims for. Benchmarks report against them; they are never test thresholds.
TARGETS = {
    "cold_start_ratio_vs_bwrap": 0.6,
    "throughput_per_s": 200.0,
    "supervisor_vmhwm_kib": 4096,
    "slowdown_pct": 5.0,
    "audit_records_per_s": 20000.0,
    "telemetry_overhead_pct": 3.0,
    "tunnel_throughput_ratio": net.TUNNEL_RATIO_TARGET,
}

# ---- statistics -------------------------------------------------------------------------


def summary(xs):
    return {"n": len(xs), "median": statistics.median(xs), "p90": percentile(xs, 90),
            "mean": statistics.fmean(xs), "min": min(xs), "max": max(xs)}


# ---- the machine ------------------------------------------------------------------------


def read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def first_line(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unavailable"


def machine_info(warden):
    cpuinfo = read("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor())
    mhz = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                if line.startswith("cpu MHz")), "?")
    mem_kib = int(read("/proc/meminfo").split()[1])
    hybrid = os.path.isdir("/sys/fs/cgroup/memory") and os.path.isdir("/sys/fs/cgroup/unified")
    return {
        "cpu_model": model,
        "cpu_mhz": mhz,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "os": next((line.split("=", 1)[1].strip('"') for line in
                    read("/etc/os-release").splitlines() if line.startswith("PRETTY_NAME=")),
                   "?"),
        "cgroups": "hybrid (v1 controllers)" if hybrid else (
            "v2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "v1"),
        "euid": os.geteuid(),
        "versions": {
            "warden": first_line([warden, "--version"]),
            "bwrap": first_line(["bwrap", "--version"]),
            "runc": first_line(["runc", "--version"]),
            "firejail": first_line(["firejail", "--version"]),
            "python3": platform.python_version(),
            "gcc": first_line(["gcc", "--version"]),
        },
    }


def loadavg():
    return read("/proc/loadavg").split()[:3]


def cpu_idle(seconds):
    """The fraction of all CPUs' time spent idle over the next `seconds` (/proc/stat)."""
    def sample():
        f = [int(x) for x in read("/proc/stat").split("\n")[0].split()[1:]]
        return f[3] + f[4], sum(f)  # idle + iowait, all
    i0, t0 = sample()
    time.sleep(seconds)
    i1, t1 = sample()
    return (i1 - i0) / max(1, t1 - t0)


SETTLE_IDLE, SETTLE_MAX_S = 0.85, 90


def settle(part, settled, progress, wait=True):
    """Wait (at most SETTLE_MAX_S) until the CPUs are SETTLE_IDLE idle over a second: a part
    that heavy work ran right before (the daemon's load test, a VM) would otherwise measure
    that work's aftermath. What was waited and found goes into the results."""
    t0 = time.monotonic()
    idle = cpu_idle(1)
    while wait and idle < SETTLE_IDLE and time.monotonic() - t0 < SETTLE_MAX_S:
        idle = cpu_idle(1)
    waited = round(time.monotonic() - t0, 1)
    settled[part] = {"waited_s": waited, "idle": round(idle, 3), "loadavg": loadavg()}
    if idle < SETTLE_IDLE:
        progress(f"{part}: the machine stayed busy ({idle:.0%} idle after {waited} s)")


# ---- helpers and fixtures ---------------------------------------------------------------


def compile_helpers(outdir):
    """gcc the C helpers into outdir (world-readable, so a sandbox user can run them)."""
    os.makedirs(outdir, exist_ok=True)
    os.chmod(outdir, 0o755)
    for name, flags in (("spawnbench", []), ("sysloop", []), ("nsfloor", ["-static"])):
        src = os.path.join(HERE, name + ".c")
        dst = os.path.join(outdir, name)
        if not os.path.exists(dst) or os.path.getmtime(dst) < os.path.getmtime(src):
            subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror"] + flags +
                           ["-o", dst, src], check=True)
        os.chmod(dst, 0o755)


# What meson.build links warden with (its static_deps), as pkg-config names.
DYNAMIC_LIBS = ["libseccomp", "yaml-0.1", "jansson", "libcrypto", "libssl", "libbpf", "libelf",
                "zlib", "libsodium", "libevent_core", "libevent_extra", "libevent_openssl",
                "libevent_pthreads"]


def link_dynamic_warden(build, outdir):
    """warden as it would be linked dynamically (against Debian's shared libraries), from
    the objects meson built, to keep the reason for the static link measured. Returns
    (path, None), or (None, why not)."""
    objs = sorted(glob.glob(os.path.join(build, "warden.p", "*.o")))
    lib = os.path.join(build, "libwarden.a")
    if not objs or not os.path.exists(lib):
        return None, f"no objects in {build}/warden.p or no {lib} to link"
    dst = os.path.join(outdir, "warden-dynamic")
    pc = subprocess.run(["pkg-config", "--libs"] + DYNAMIC_LIBS, capture_output=True,
                        text=True)
    if pc.returncode != 0:
        return None, "pkg-config: " + (pc.stderr.strip().splitlines() or ["?"])[-1]
    r = subprocess.run(["gcc", "-o", dst] + objs + [lib] + pc.stdout.split() +
                       ["-lhttp_parser", "-lpthread"], capture_output=True, text=True)
    if r.returncode != 0:
        return None, "linking failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
    os.chmod(dst, 0o755)
    return dst, None


SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def host_links():
    """The host's top-level merged-/usr symlinks (/bin -> usr/bin, ...)."""
    return [(n, os.readlink("/" + n)) for n in SYSTEM_LINKS if os.path.islink("/" + n)]


def bwrap_argv():
    argv = ["bwrap", "--unshare-all", "--die-with-parent", "--cap-drop", "ALL",
            "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for name, target in host_links():
        argv += ["--symlink", target, "/" + name]
    return argv + ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]


def runc_bundle(bundle):
    """An OCI bundle doing what the default policy does, as far as runc can: a read-only
    rootfs holding only mount points and the /bin,/lib* symlinks; the host's /usr and /etc
    bound read-only; /proc, a /dev tmpfs with devpts and /dev/shm, a private /tmp; pid, net,
    ipc, uts, mount, cgroup and user namespaces (uid/gid 0-65535 mapped to 200000+);
    uid 1000 with no capabilities and no_new_privs; memory 1 GiB and 512 pids through
    cgroups. It has no seccomp filter and no Landlock rules (runc has no Landlock)."""
    rootfs = os.path.join(bundle, "rootfs")
    if os.path.exists(bundle):
        shutil.rmtree(bundle)
    for d in ("usr", "etc", "proc", "dev", "tmp"):
        os.makedirs(os.path.join(rootfs, d))
    for name, target in host_links():
        os.symlink(target, os.path.join(rootfs, name))
    for dirpath, dirnames, _ in os.walk(bundle):
        os.chmod(dirpath, 0o755)
    caps = {k: [] for k in ("bounding", "effective", "permitted", "inheritable", "ambient")}
    idmap = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    config = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False, "user": {"uid": 1000, "gid": 1000}, "args": ["/bin/true"],
            "env": ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp"], "cwd": "/",
            "capabilities": caps, "noNewPrivileges": True,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096}],
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "sandbox",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777", "size=524288k"]},
            {"destination": "/usr", "type": "bind", "source": "/usr",
             "options": ["rbind", "ro", "nosuid", "nodev"]},
            {"destination": "/etc", "type": "bind", "source": "/etc",
             "options": ["rbind", "ro", "nosuid", "nodev"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in
                           ("pid", "network", "ipc", "uts", "mount", "cgroup", "user")],
            "uidMappings": idmap, "gidMappings": idmap,
            "resources": {"devices": [{"allow": False, "access": "rwm"}],
                          "memory": {"limit": 1 << 30}, "pids": {"limit": 512}},
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/sched_debug", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f, indent=1)


# ---- contenders -------------------------------------------------------------------------


class Contender:
    def __init__(self, key, label, argv, batch, note):
        self.key, self.label, self.argv, self.batch, self.note = key, label, argv, batch, note
        self.samples, self.batches = [], []  # latencies (ms); (n, wall_ms) per batch
        self.failures = 0
        self.unavailable = None

    def preflight(self):
        """Run once, output captured: a contender that cannot run here is reported as
        unavailable, with the reason, instead of being timed."""
        if self.unavailable:
            return
        if not shutil.which(self.argv[0]):
            self.unavailable = f"{self.argv[0]} is not installed"
            return
        try:
            r = subprocess.run(self.argv, capture_output=True, text=True, timeout=30,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            self.unavailable = "did not finish within 30 s"
            return
        if r.returncode != 0:
            why = (r.stderr.strip() or r.stdout.strip() or "no output").splitlines()[-1]
            self.unavailable = f"exit status {r.returncode}: {why}"


def contenders(warden, warden_dyn, bench_dir, runc_root):
    bundle = os.path.join(bench_dir, "runc-bundle")
    runc_bundle(bundle)
    dyn_path, dyn_why = warden_dyn
    dyn = Contender("warden_dynamic", "ref: warden linked dynamically",
                    [dyn_path or "warden-dynamic", "run", "--", "/bin/true"], 20,
                    "the same objects linked against libc, libseccomp and libyaml .so files: "
                    "what the static link saves")
    if dyn_why:
        dyn.unavailable = dyn_why
    return [
        Contender("warden", "warden run (default policy)", [warden, "run", "--", "/bin/true"],
                  20, "user, pid, mount, ipc, uts, cgroup and net namespaces (loopback up); "
                  "seccomp, Landlock, cgroup memory/pids limits, capabilities dropped"),
        Contender("bwrap", "bwrap --unshare-all", bwrap_argv() + ["/bin/true"], 20,
                  "all namespaces bwrap supports (user, pid, mount, ipc, uts, cgroup, net); "
                  "no seccomp, no Landlock, no cgroup limits"),
        Contender("runc", "runc run (OCI bundle)",
                  ["runc", "--root", runc_root, "run", "--bundle", bundle, "warden-bench"], 4,
                  "see runc_bundle(): 7 namespaces incl. user and net, cgroup limits, "
                  "no seccomp, no Landlock"),
        Contender("firejail", "firejail --noprofile",
                  ["firejail", "--quiet", "--noprofile", "--private-tmp", "--private-dev",
                   "--net=none", "--caps.drop=all", "--nonewprivs", "/bin/true"], 6,
                  "mount, pid and net namespaces, private /tmp and /dev, capabilities "
                  "dropped; runs as the invoking user; no seccomp (--noprofile)"),
        Contender("true", "/bin/true (no sandbox)", ["/bin/true"], 20,
                  "the baseline: posix_spawn + exec + exit"),
        # For reference, not contenders: what the kernel's part costs here and now.
        Contender("unshare", "ref: unshare, 7 namespaces",
                  ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--ipc",
                   "--net", "--uts", "--cgroup", "--fork", "/bin/true"], 20,
                  "util-linux unshare: the same seven namespaces and nothing else (no "
                  "mounts, no seccomp, no Landlock, no cgroup)"),
        Contender("nsfloor", "ref: nsfloor (kernel floor)",
                  [os.path.join(bench_dir, "nsfloor"), "/bin/true"], 20,
                  "bench/nsfloor.c: one clone3() into the seven namespaces, its pid 1 forking "
                  "the command, statically linked; no id maps, mounts or limits: the floor "
                  "of any namespace sandbox here"),
        Contender("warden_notel", "ref: warden --no-telemetry", [warden, "run",
                  "--no-telemetry", "--", "/bin/true"], 20,
                  "the default policy without eBPF telemetry and cgroup sampling (the audit "
                  "records are still written): shows what watching costs at start"),
        Contender("warden_hostnet", "ref: warden --network host", [warden, "run", "--network",
                  "host", "--", "/bin/true"], 20,
                  "the default policy but sharing the host's network namespace: shows the "
                  "cost of creating a network namespace"),
        dyn,
    ]


def spawnbench(bench_dir, argv, n):
    r = subprocess.run([os.path.join(bench_dir, "spawnbench"), str(n)] + argv,
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"spawnbench failed: {r.stderr.strip()}")
    return json.loads(r.stdout)


def measure_cold_start(cs, bench_dir, rounds, rng, progress):
    live = [c for c in cs if not c.unavailable]
    for i in range(rounds):
        order = live[:]
        rng.shuffle(order)
        for c in order:
            res = spawnbench(bench_dir, c.argv, c.batch)
            c.samples += res["samples_ms"]
            c.batches.append((res["n"], res["wall_ms"]))
            c.failures += res["failures"]
        progress(f"cold start: round {i + 1}/{rounds}")


# ---- supervisor memory -----------------------------------------------------------------


def status_kib(pid, field):
    for line in read(f"/proc/{pid}/status").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def peak_rss(argv):
    """Start argv, poll /proc/PID/status until it exits, return the last VmHWM and the
    largest VmRSS seen (KiB) of that process alone (its children are not counted)."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    hwm = rss = None
    while p.poll() is None:
        h, r = status_kib(p.pid, "VmHWM"), status_kib(p.pid, "VmRSS")
        if h is not None:
            hwm = h
        if r is not None:
            rss = max(rss or 0, r)
        time.sleep(0.01)
    if p.returncode != 0:
        raise RuntimeError(f"{argv}: exit status {p.returncode}")
    return hwm, rss


def drop_page_cache(path):
    """Evict path's pages from the page cache (none of a mapped page): written back
    first, since a dirty page is not evicted."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def measure_memory(warden, warden_dyn, with_bwrap, runs, rng, progress):
    """VmHWM counts the binary's code pages the process mapped, and how many a fault maps
    depends on how those pages came into the page cache (written by the linker or an
    installer: large folios, mapped whole; read back from disk: smaller ones). So warden is
    measured twice: as the page cache holds its binary now (the target's figure), and,
    after all the other runs (evicting changes what "now" is), each time right after its
    pages were evicted (a reference)."""
    subjects = {"warden": [warden, "run", "--", "sleep", "1"]}
    if with_bwrap:
        subjects["bwrap"] = bwrap_argv() + ["sleep", "1"]
    if warden_dyn:
        subjects["warden_dynamic"] = [warden_dyn, "run", "--", "sleep", "1"]
    out = {k: {"vmhwm_kib": [], "vmrss_kib": []} for k in list(subjects) + ["warden_evicted"]}

    def record(k, argv):
        hwm, rss = peak_rss(argv)
        out[k]["vmhwm_kib"].append(hwm)
        out[k]["vmrss_kib"].append(rss)

    for i in range(runs):
        order = list(subjects)
        rng.shuffle(order)
        for k in order:
            record(k, subjects[k])
        progress(f"memory: run {i + 1}/{runs}")
    subjects["warden_evicted"] = subjects["warden"]
    for _ in range(runs):
        drop_page_cache(warden)
        record("warden_evicted", subjects["warden"])
    for k in out:
        out[k]["argv"] = subjects[k]
    return out


# ---- syscall-heavy slowdown ------------------------------------------------------------

PY_STAT_LOOP = """import json, os, sys, time
st, path, n = os.stat, "/usr/lib/os-release", int(sys.argv[1])
for _ in sys.stdin:
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        st(path)
    print(json.dumps({"seconds": time.perf_counter() - t0,
                      "cpu_seconds": time.process_time() - c0}), flush=True)
"""


LOCKSTEP_SETS = 5


def lockstep(argvs, chunks, rng):
    """Start one Looper per argv and have them take turns, in a shuffled order each turn;
    the first turn is a warm-up and is dropped. Returns {name: [chunk result, ...]}. All
    of them are pinned to the same CPU (sandboxes keep the affinity they start with):
    CPUs of a virtual machine can differ by tens of per cent in the same loop, which would
    otherwise decide the comparison. And not one set of processes but LOCKSTEP_SETS fresh
    ones in a row, chunks / LOCKSTEP_SETS turns each: a process has a speed of its own
    (where its memory landed), so that two processes running the same thing in lock-step
    differ by up to 2 % (docs/benchmarks.md), a bias no number of turns of the same two
    cancels."""
    cpu = max(os.sched_getaffinity(0))
    sets = max(1, min(LOCKSTEP_SETS, chunks))
    runs = {name: [] for name in argvs}
    for i in range(sets):
        turns = chunks // sets + (1 if i < chunks % sets else 0)
        got = take_turns(argvs, turns, rng, lambda argv: Looper(argv, {cpu}), Looper.turn)
        for name, rs in got.items():
            runs[name] += rs
    return runs


def compare_clocks(a, b, entry):
    """compare() of two lists of chunk results, on both clocks: the CPU time the loop
    used (user + system: where seccomp and Landlock cost lands, and what other tenants of
    a noisy machine disturb least) and the wall-clock time (what a user waits for,
    including waiting for a CPU). Added to entry, which is returned."""
    for clock, field in (("cpu", "cpu_seconds"), ("wall", "seconds")):
        entry[clock] = compare([x[field] for x in a], [x[field] for x in b])
    return entry


def compare(inside, outside):
    """Medians, p90s and ratios of two equally long lists of chunk timings (seconds)."""
    med_in, med_out = statistics.median(inside), statistics.median(outside)
    return {
        "median_inside_s": med_in, "median_outside_s": med_out,
        "p90_inside_s": percentile(inside, 90), "p90_outside_s": percentile(outside, 90),
        "ratio": med_in / med_out, "slowdown_pct": (med_in / med_out - 1) * 100,
        "median_paired_ratio": statistics.median(a / b for a, b in zip(inside, outside)),
        "seconds_inside": [round(x, 6) for x in inside],
        "seconds_outside": [round(x, 6) for x in outside],
    }


def measure_slowdown(warden, bench_dir, chunks, c_chunk, py_chunk, rng, progress):
    """Each workload runs as two long-lived processes, one inside a default-policy sandbox
    and one outside, that take turns running short chunks of the same loop. Adjacent
    chunks see the same machine, so drift cancels out in the paired ratios."""
    sysloop = os.path.join(bench_dir, "sysloop")
    workloads = {
        "c_syscalls": {
            "description": f"{chunks} x {c_chunk} x (open+read+close /usr/lib/os-release, "
                           "stat, getppid)",
            "outside": [sysloop, "-c", str(c_chunk)],
            "inside": [warden, "run", "-q", "-v", f"{bench_dir}:/bench:ro", "--",
                       "/bench/sysloop", "-c", str(c_chunk)],
        },
        "python_stat": {
            "description": f"python3: {chunks} x {py_chunk} x os.stat('/usr/lib/os-release')",
            "outside": ["/usr/bin/python3", "-c", PY_STAT_LOOP, str(py_chunk)],
            "inside": [warden, "run", "-q", "--", "/usr/bin/python3", "-c", PY_STAT_LOOP,
                       str(py_chunk)],
        },
    }
    results = {}
    for name, w in workloads.items():
        runs = lockstep({"inside": w["inside"], "outside": w["outside"]}, chunks, rng)
        progress(f"slowdown: {name} done")
        entry = {"description": w["description"],
                 "inside_argv": [a if "\n" not in a else "PY_STAT_LOOP" for a in w["inside"]]}
        results[name] = compare_clocks(runs["inside"], runs["outside"], entry)
    return results


def no_landlock_policy(warden, bench_dir):
    """The default policy with Landlock switched off, written next to the helpers; None
    if the policy's text is not what this expects."""
    r = subprocess.run([warden, "policy", "show", "default"], capture_output=True, text=True)
    text = r.stdout.replace("landlock: best_effort", "landlock: 'off'")
    if r.returncode != 0 or text == r.stdout:
        return None
    path = os.path.join(bench_dir, "default-no-landlock.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def measure_breakdown(warden, bench_dir, with_bwrap, chunks, iterations, rng, progress):
    """Where a slowdown comes from: each part of the C loop alone (open+close, stat,
    getppid), in CPU time per call, unsandboxed, under the default policy, under the
    default policy without Landlock, and under bwrap (same mount layout, no seccomp, no
    Landlock), all four in lock-step."""
    sysloop = os.path.join(bench_dir, "sysloop")
    vol = ["-v", f"{bench_dir}:/bench:ro"]
    noll = no_landlock_policy(warden, bench_dir)
    results = {"chunks": chunks, "iterations_per_chunk": iterations,
               "no_landlock_policy": noll}
    for kind in ("open", "stat", "getppid"):
        tail = ["/bench/sysloop", "-c", "-k", kind, str(iterations)]
        argvs = {"outside": [sysloop, "-c", "-k", kind, str(iterations)],
                 "warden": [warden, "run", "-q"] + vol + ["--"] + tail}
        if with_bwrap:
            argvs["bwrap"] = bwrap_argv() + ["--ro-bind", bench_dir, "/bench"] + tail
        if noll:
            argvs["warden_no_landlock"] = [warden, "run", "-q", "--policy", noll] + vol + \
                ["--"] + tail
        runs = lockstep(argvs, chunks, rng)
        out = [x["cpu_seconds"] for x in runs["outside"]]
        entry = {"outside_ns": statistics.median(out) * 1e9 / iterations}
        for name in argvs:
            if name != "outside":
                c = compare([x["cpu_seconds"] for x in runs[name]], out)
                entry[name] = {"ns": c["median_inside_s"] * 1e9 / iterations,
                               "ratio": c["ratio"],
                               "median_paired_ratio": c["median_paired_ratio"]}
        results[kind] = entry
        progress(f"breakdown: {kind} done")
    return results


# ---- audit log --------------------------------------------------------------------------


def compile_audit_bench(build, outdir):
    """gcc bench/audit_bench.c against the libwarden.a meson built. Returns (path, None) or
    (None, why not)."""
    src = os.path.join(HERE, "audit_bench.c")
    lib = os.path.join(build, "libwarden.a")
    dst = os.path.join(outdir, "audit_bench")
    if not os.path.exists(lib):
        return None, f"no {lib}: run `make build` first"
    if (not os.path.exists(dst) or os.path.getmtime(dst) < os.path.getmtime(src)
            or os.path.getmtime(dst) < os.path.getmtime(lib)):
        r = subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-I", ROOT, "-o", dst,
                            src, lib, "-ljansson", "-lsodium", "-lcrypto", "-lpthread"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None, "compiling failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
    return dst, None


def fs_type(path):
    """The file system type of the mount holding path (from /proc/self/mounts)."""
    path, best, kind = os.path.realpath(path), "", "?"
    for line in read("/proc/self/mounts").splitlines():
        parts = line.split()
        if len(parts) > 2 and (path == parts[1] or path.startswith(parts[1].rstrip("/") + "/")) \
                and len(parts[1]) > len(best):
            best, kind = parts[1], parts[2]
    return kind


def measure_audit(build, bench_dir, records, batch, per_record, runs, progress):
    """Fresh logs in bench_dir/audit (on the build's disk, so that fdatasync is real): per
    run, records appended in groups of batch per commit, then per_record records with one
    commit each, then a verification of the first log. Checkpoints every 1000 records.
    Medians over runs."""
    exe, why = compile_audit_bench(build, bench_dir)
    if not exe:
        return {"unavailable": why}
    work = os.path.join(bench_dir, "audit")
    os.makedirs(work, exist_ok=True)
    out = {"records": records, "batch": batch, "per_record_records": per_record,
           "checkpoint_every": 1000, "directory": work, "filesystem": fs_type(work),
           "runs": []}
    for i in range(runs):
        r = subprocess.run([exe, work, str(records), str(batch), str(per_record)],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            return {"unavailable": f"audit_bench failed: {r.stderr.strip()}"}
        out["runs"].append(json.loads(r.stdout))
        progress(f"audit log: run {i + 1}/{runs}")
    for key in ("batched", "per_record", "verify"):
        out[key + "_records_per_s"] = statistics.median(x[key]["records_per_s"]
                                                        for x in out["runs"])
    out["per_record_commit_ms_median"] = statistics.median(
        x["per_record"]["commit_ms_median"] for x in out["runs"])
    out["record_bytes"] = out["runs"][0]["batched"]["log_bytes"] / \
        out["runs"][0]["batched"]["log_records"]
    return out


def audit_report(a):
    if "unavailable" in a:
        return ["Audit log: unavailable: " + a["unavailable"]]
    rows = [(f"{a['records']} records, {a['batch']} per commit", a["batched_records_per_s"], ""),
            (f"{a['per_record_records']} records, one commit each",
             a["per_record_records_per_s"],
             f"  (commit median {a['per_record_commit_ms_median']:.3f} ms)"),
            ("verify", a["verify_records_per_s"], "")]
    return [f"Audit log ({a['filesystem']} at {a['directory']}; checkpoints every "
            f"{a['checkpoint_every']} records; {a['record_bytes']:.0f} bytes per record; "
            f"median of {len(a['runs'])} runs)"] + [
        f"  {label:<36} {rate:>9.0f} records/s{extra}" for label, rate, extra in rows]


# ---- eBPF telemetry ----------------------------------------------------------------------


def telproj(bench_dir, files=200):
    """A generated C project: `files` small C files and a main, each compiled with -O2, and a
    Makefile that links them (bench_dir/telproj, made once)."""
    d = os.path.join(bench_dir, "telproj")
    if os.path.exists(os.path.join(d, "Makefile")):
        return d
    os.makedirs(d, exist_ok=True)
    for i in range(files):
        with open(os.path.join(d, f"f{i:03d}.c"), "w") as f:
            f.write("#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
                    f"int f{i}(int n)\n{{\n\tchar b[64];\n\tint s = 0;\n"
                    f"\tfor (int k = 0; k < n; k++) {{\n"
                    f"\t\tsnprintf(b, sizeof(b), \"%d-%s\", k * {i + 1}, \"x\");\n"
                    "\t\ts += (int)strlen(b) + atoi(b);\n\t}\n\treturn s;\n}\n")
    with open(os.path.join(d, "main.c"), "w") as f:
        f.write("".join(f"int f{i}(int);\n" for i in range(files)))
        f.write("int main(void)\n{\n\tint s = 0;\n" +
                "".join(f"\ts += f{i}(3);\n" for i in range(files)) + "\treturn s == 0;\n}\n")
    with open(os.path.join(d, "Makefile"), "w") as f:
        f.write("OBJS = $(patsubst %.c,%.o,$(wildcard *.c))\n"
                "prog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n"
                "%.o: %.c\n\t$(CC) -O2 -Wall -c $< -o $@\n")
    return d


def telwatch_argv(telwatch, watched, extra=()):
    return [telwatch, "--quiet"] + ([] if watched else ["--no-watch"]) + list(extra)


def tel_counts(telwatch, watched, argv, bench_dir, extra=()):
    """Run argv under telwatch (watched or not, a fresh group either way); its last JSON
    line: the counters, the command's wall-clock and CPU time."""
    out = os.path.join(bench_dir, "telwatch-out.json")
    r = subprocess.run(telwatch_argv(telwatch, watched, extra) + ["--out", out, "--"] + argv,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"telwatch {argv}: {r.stderr.strip()}")
    with open(out) as f:
        lines = [json.loads(line) for line in f]
    return lines[-1]


def tel_work(telwatch, args, bench_dir, extra=()):
    """A telwatch workload, watched, with its events drained: (its report, the counters)."""
    r = subprocess.run([telwatch, "--quiet"] + list(extra) + ["--", telwatch, "work"] +
                       [str(a) for a in args], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"telwatch work {args}: {r.stderr.strip()}")
    lines = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    return (next(x for x in lines if x["type"] == "work"),
            next(x for x in lines if x["type"] == "counts"))


def make_rounds(telwatch, proj, bench_dir, rounds, rng, progress):
    """`make -j2 -B` (everything rebuilt) watched and not, in a shuffled order each round."""
    runs = {True: [], False: []}
    argv = ["make", "-s", "-C", proj, "-j2", "-B"]
    tel_counts(telwatch, False, argv, bench_dir)  # warm the page cache
    for i in range(rounds):
        order = [True, False]
        rng.shuffle(order)
        for watched in order:
            runs[watched].append(tel_counts(telwatch, watched, argv, bench_dir))
        progress(f"telemetry: make round {i + 1}/{rounds}")
    out = {"description": f"make -j2 -B of {proj} (200 files + main, gcc -O2), {rounds} rounds",
           "records_per_build": statistics.median(x["events"] for x in runs[True]),
           "drops": sum(x["drops"] for x in runs[True])}
    for clock, field in (("cpu", "cpu_s"), ("wall", "wall_s")):
        out[clock] = compare([x[field] for x in runs[True]], [x[field] for x in runs[False]])
    return out


def with_extra_set(telwatch, sysloop, chunks, iterations, rng, progress):
    """What the programs cost a process outside every watched group: an unwatched loop in
    lock-step chunks, with one more set of the programs loaded (a private pin root) and
    without. Other sets stay loaded throughout; this is the cost of one."""
    root = "/sys/fs/bpf/warden-bench"
    loop = Looper([sysloop, "-c", str(iterations)])
    runs = {"loaded": [], "unloaded": []}
    try:
        for i in range(chunks + 1):
            order = ["loaded", "unloaded"]
            rng.shuffle(order)
            for state in order:
                if state == "loaded":
                    subprocess.run([telwatch, "--pin-root", root, "bench-attach", "1"],
                                   stdout=subprocess.DEVNULL, check=True)
                else:
                    shutil.rmtree(root, ignore_errors=True)
                r = loop.turn()
                if i > 0:
                    runs[state].append(r)
    finally:
        loop.close()
        shutil.rmtree(root, ignore_errors=True)
    progress("telemetry: unwatched processes done")
    return {"description": f"unwatched: {chunks} x {iterations} x (open+read+close, stat, "
                           "getppid), one more program set loaded vs not",
            "cpu": compare([x["cpu_seconds"] for x in runs["loaded"]],
                           [x["cpu_seconds"] for x in runs["unloaded"]]),
            "wall": compare([x["seconds"] for x in runs["loaded"]],
                            [x["seconds"] for x in runs["unloaded"]])}


def attach_costs(telwatch, fresh, repeated, loads):
    """Attach (and detach) with the programs already loaded, each in a fresh process and
    many in one process; and the first attach of a host, which loads and pins them (a fresh
    private pin root each time)."""
    def bench(extra, n):
        r = subprocess.run([telwatch] + extra + ["bench-attach", str(n)], capture_output=True,
                           text=True, check=True)
        return json.loads(r.stdout)
    first = [bench([], 1)["attach_ns"][0] / 1e6 for _ in range(fresh)]
    again = bench([], repeated)
    out = {"fresh_process_ms": summary(first),
           "same_process_ms": summary([x / 1e6 for x in again["attach_ns"]]),
           "detach_ms": summary([x / 1e6 for x in again["detach_ns"]]), "first_load_ms": []}
    for i in range(loads):
        root = f"/sys/fs/bpf/warden-bench-load-{i}"
        shutil.rmtree(root, ignore_errors=True)
        try:
            out["first_load_ms"].append(bench(["--pin-root", root], 1)["attach_ns"][0] / 1e6)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    out["first_load_ms"] = summary(out["first_load_ms"])
    return out


def measure_telemetry(build, bench_dir, chunks, py_chunk, c_chunk, make_rounds_n, rng,
                      progress):
    telwatch = os.path.join(build, "tests", "telwatch")
    if not os.access(telwatch, os.X_OK):
        return {"unavailable": f"{telwatch} is missing: run `make build` first"}
    r = subprocess.run([telwatch, "available"], capture_output=True, text=True)
    avail = json.loads(r.stdout) if r.returncode == 0 else {"available": False,
                                                            "why_not": [r.stderr.strip()]}
    if not avail["available"]:
        return {"unavailable": "; ".join(avail["why_not"])}
    sysloop = os.path.join(bench_dir, "sysloop")
    out = {"sources_off": avail["why_not"], "lockstep": {}}
    loops = {
        "python_stat": (f"python3: {chunks} x {py_chunk} x os.stat('/usr/lib/os-release')",
                        ["/usr/bin/python3", "-c", PY_STAT_LOOP, str(py_chunk)]),
        "c_syscalls": (f"{chunks} x {c_chunk} x (open+read+close, stat, getppid)",
                       [sysloop, "-c", str(c_chunk)]),
    }
    for name, (desc, argv) in loops.items():
        runs = lockstep({"on": telwatch_argv(telwatch, True, ["--out", os.devnull, "--"]) + argv,
                         "off": telwatch_argv(telwatch, False, ["--out", os.devnull, "--"]) +
                         argv}, chunks, rng)
        out["lockstep"][name] = compare_clocks(runs["on"], runs["off"],
                                               {"description": desc + ", watched vs not"})
        progress(f"telemetry: {name} done")
    out["make"] = make_rounds(telwatch, telproj(bench_dir), bench_dir, make_rounds_n, rng,
                              progress)
    out["unwatched"] = with_extra_set(telwatch, sysloop, max(chunks // 2, 3), c_chunk, rng,
                                      progress)
    exe = ["/bin/busybox", "true"] if os.access("/bin/busybox", os.X_OK) else ["/bin/true"]
    for name, args in (("exec_storm", ["exec-storm", 3, 2] + exe),
                       ("connect_storm", ["connect-storm", 3, 2])):
        w, c = tel_work(telwatch, args, bench_dir)
        out[name] = {"argv": args, "rate_per_s": w["rate"], "seconds": w["seconds"],
                     "done": w.get("execs", w.get("connects")), "records": c["events"],
                     "delivered": c["delivered"], "drops": c["drops"]}
        progress(f"telemetry: {name} done")
    out["attach"] = attach_costs(telwatch, 20, 50, 3)
    progress("telemetry: attach costs done")
    return out


def comparison_lines(e):
    """A workload's description, and a line per clock: medians, ratio, paired ratios."""
    out = [f"  {e['description']}"]
    for clock in ("cpu", "wall"):
        c = e[clock]
        out.append(f"    {clock:<4} median {c['median_inside_s']:.3f} vs "
                   f"{c['median_outside_s']:.3f} s  ratio {c['ratio']:.3f} "
                   f"({c['slowdown_pct']:+.1f}%), median of paired ratios "
                   f"{c['median_paired_ratio']:.3f}")
    return out


def telemetry_report(t):
    if "unavailable" in t:
        return ["eBPF telemetry: unavailable: " + t["unavailable"]]
    out = ["eBPF telemetry, watched vs not watched (a fresh cgroup v2 group either way)"]
    for name, e in list(t["lockstep"].items()) + [("make", t["make"]),
                                                   ("unwatched", t["unwatched"])]:
        out += comparison_lines(e)
    for name in ("exec_storm", "connect_storm"):
        e = t[name]
        out.append(f"  {name.replace('_', ' ')}: {e['rate_per_s']:.0f}/s for {e['seconds']:.1f} s, "
                   f"{e['records']} records, {e['delivered']} delivered, {e['drops']} dropped")
    a = t["attach"]
    out.append(f"  attach, programs loaded: fresh process median "
               f"{a['fresh_process_ms']['median']:.2f} ms (p90 {a['fresh_process_ms']['p90']:.2f}),"
               f" same process median {a['same_process_ms']['median']:.2f} ms; detach median "
               f"{a['detach_ms']['median']:.2f} ms; first load + attach median "
               f"{a['first_load_ms']['median']:.1f} ms")
    if t["sources_off"]:
        out.append("  sources off here: " + "; ".join(t["sources_off"]))
    return out


# ---- telemetry in a sandbox ---------------------------------------------------------------

def run_rusage(argv, timeout=900):
    """Run argv; (exit status, wall seconds, CPU seconds of it and every descendant it
    waited for: for warden run, the supervisor, init and the whole sandbox)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"{argv}: exit {p.returncode}: {err.strip()}")
    return wall, ru.ru_utime + ru.ru_stime


def read_events(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def ts_s(ts):
    """An event's RFC 3339 timestamp as seconds since the epoch (float)."""
    d = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
    return d.replace(tzinfo=datetime.timezone.utc).timestamp()


def sandbox_make(warden, proj, bench_dir, rounds, rng, progress):
    """`make -j2 -B` of the generated project inside a sandbox, telemetry on and off, in a
    shuffled order each round; CPU time is the whole sandbox's plus the supervisor's."""
    base = [warden, "run", "-q", "-v", f"{proj}:/proj:rw", "-w", "/proj"]
    cmd = ["--", "make", "-s", "-j2", "-B"]
    runs = {True: [], False: []}
    run_rusage(base + ["--no-telemetry"] + cmd)  # warm the page cache
    for i in range(rounds):
        order = [True, False]
        rng.shuffle(order)
        for on in order:
            runs[on].append(run_rusage(base + ([] if on else ["--no-telemetry"]) + cmd))
        progress(f"sandbox telemetry: make round {i + 1}/{rounds}")
    out = {"description": f"warden run -- make -j2 -B (200 files + main, gcc -O2), {rounds} "
                          "rounds, telemetry on vs --no-telemetry"}
    for clock, k in (("cpu", 1), ("wall", 0)):
        out[clock] = compare([x[k] for x in runs[True]], [x[k] for x in runs[False]])
    return out


def sandbox_storm(warden, telwatch, bench_dir, kind, seconds, workers):
    """The highest exec or connect rate this machine reaches from inside one sandbox, with
    the events stream written to a file: what the kernel produced, what arrived, what was
    lost (the stream's own account, checked against the events counted in the file)."""
    events = os.path.join(bench_dir, f"storm-{kind}.jsonl")
    if os.path.exists(events):
        os.unlink(events)  # --events appends
    tdir = os.path.dirname(telwatch)
    extra = ["/bin/true"] if kind == "exec-storm" else []
    # The connect storm serves itself on the sandbox's loopback.
    pol = os.path.join(bench_dir, "storm.yaml")
    with open(pol, "w") as f:
        f.write("name: storm\nnetwork: {tcp_bind: any, tcp_connect: any}\n")
    r = subprocess.run([warden, "run", "-q", "--policy", pol, "--events", events, "-v",
                        f"{tdir}:/t:ro", "--",
                        "/t/telwatch", "work", kind, str(seconds), str(workers)] + extra,
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"{kind} in a sandbox: exit {r.returncode}: {r.stderr.strip()}")
    work = next(json.loads(x) for x in r.stdout.splitlines() if x.startswith("{"))
    evs = read_events(events)
    end = evs[-1]
    want = "exec" if kind == "exec-storm" else "connect"
    kernel_kinds = ("exec", "exit", "connect", "refused", "oom")
    return {"argv": [kind, seconds, workers] + extra, "rate_per_s": work["rate"],
            "done": work.get("execs", work.get("connects")),
            f"{want}_events": sum(1 for e in evs if e["kind"] == want),
            "kernel_events_in_stream": sum(1 for e in evs if e["kind"] in kernel_kinds),
            "events": end.get("events"), "drops": end.get("drops")}


def guard_latency(warden, bench_dir, runs, progress):
    """How soon a rule acts after its trigger, end to end through warden run: an exec
    denylist (the kernel's exec event to the guardrail event) and a memory threshold (the
    moment just before the workload allocates past it, stamped by the workload, to the
    guardrail event). Both rules kill."""
    pol = os.path.join(bench_dir, "guard-latency.yaml")
    with open(pol, "w") as f:
        f.write("name: guard-latency\nguardrails:\n"
                "  - {name: no-sleep, when: {exec: [sleep]}, action: kill}\n"
                "  - {name: memory, when: {memory_peak_above: 64M}, action: kill}\n")
    # About 60 MiB in all (python itself is about 6), the moment stamped, then 16 MiB more:
    # the stamp is taken a few MiB of page faults before the crossing, so the figure is
    # an upper bound.
    alloc = ("import time\na = bytearray(54 << 20)\nprint(time.time(), flush=True)\n"
             "b = bytearray(16 << 20)\ntime.sleep(10)\n")
    cases = {"exec": ["/bin/sh", "-c", "/bin/sleep 10"],
             "memory": ["/usr/bin/python3", "-c", alloc]}
    out = {}
    for name, cmd in cases.items():
        lat, kill = [], []
        for _ in range(runs):
            events = os.path.join(bench_dir, f"guard-{name}.jsonl")
            if os.path.exists(events):
                os.unlink(events)
            r = subprocess.run([warden, "run", "-q", "--policy", pol, "--events", events, "--"]
                               + cmd, capture_output=True, text=True, timeout=60)
            evs = read_events(events)
            hit = next((e for e in evs if e["kind"] == "guardrail"), None)
            if r.returncode != 137 or hit is None:
                raise RuntimeError(f"guardrail {name}: exit {r.returncode}, no guardrail "
                                   f"event: {r.stderr.strip()}")
            if name == "exec":
                trig = ts_s(next(e for e in evs if e["kind"] == "exec" and
                                 e["path"].endswith("/sleep"))["ts"])
            else:
                trig = float(r.stdout.split()[0])
            lat.append((ts_s(hit["ts"]) - trig) * 1e3)
            kill.append((ts_s(evs[-1]["ts"]) - ts_s(hit["ts"])) * 1e3)
        out[name] = {"trigger_to_action_ms": summary(lat), "action_to_end_ms": summary(kill)}
        progress(f"guardrail latency: {name} done")
    return out


def measure_sandbox_telemetry(warden, build, bench_dir, chunks, py_chunk, c_chunk,
                              make_rounds_n, rng, progress):
    """Telemetry as users get it: the same sandbox (default policy) with telemetry on and
    with --no-telemetry, each loop as two long-lived sandboxes taking turns."""
    r = subprocess.run([warden, "run", "-q", "--events", "-", "--", "/bin/true"],
                       capture_output=True, text=True)
    src = next((json.loads(x) for x in r.stderr.splitlines()
                if '"telemetry.sources"' in x), None)
    if src is None or not src.get("bpf"):
        return {"unavailable": "eBPF telemetry is off here: " +
                               "; ".join((src or {}).get("off", [r.stderr.strip()]))}
    out = {"lockstep": {}}
    loops = {
        "python_stat": (f"python3: {chunks} x {py_chunk} x os.stat('/usr/lib/os-release')",
                        ["--", "/usr/bin/python3", "-c", PY_STAT_LOOP, str(py_chunk)]),
        "c_syscalls": (f"{chunks} x {c_chunk} x (open+read+close, stat, getppid)",
                       ["-v", f"{bench_dir}:/bench:ro", "--", "/bench/sysloop", "-c",
                        str(c_chunk)]),
    }
    for name, (desc, tail) in loops.items():
        runs = lockstep({"on": [warden, "run", "-q"] + tail,
                         "off": [warden, "run", "-q", "--no-telemetry"] + tail}, chunks, rng)
        out["lockstep"][name] = compare_clocks(
            runs["on"], runs["off"],
            {"description": desc + ", in a sandbox, telemetry on vs --no-telemetry"})
        progress(f"sandbox telemetry: {name} done")
    out["make"] = sandbox_make(warden, telproj(bench_dir), bench_dir, make_rounds_n, rng,
                               progress)
    telwatch = os.path.join(build, "tests", "telwatch")
    for name, kind in (("exec_storm", "exec-storm"), ("connect_storm", "connect-storm")):
        out[name] = sandbox_storm(warden, telwatch, bench_dir, kind, 3, 2)
        progress(f"sandbox telemetry: {name} done")
    out["guardrail_latency"] = guard_latency(warden, bench_dir, 10, progress)
    return out


def sandbox_telemetry_targets(t):
    targets = {}
    if "unavailable" in t:
        return targets
    for name, e in list(t["lockstep"].items()) + [("make", t["make"])]:
        pct = e["cpu"]["slowdown_pct"]
        targets[f"telemetry_{name}_cpu"] = {"value": pct,
                                            "target": f"<= {TARGETS['telemetry_overhead_pct']}%",
                                            "met": pct <= TARGETS["telemetry_overhead_pct"]}
    for name in ("exec_storm", "connect_storm"):
        targets[f"{name}_drops"] = {"value": t[name]["drops"], "target": "0",
                                    "met": t[name]["drops"] == 0}
    for name, g in t["guardrail_latency"].items():
        v = g["trigger_to_action_ms"]["max"]
        targets[f"guardrail_{name}_max_ms"] = {"value": v, "target": "<= 100",
                                               "met": v <= 100}
    return targets


def sandbox_telemetry_report(t):
    if "unavailable" in t:
        return ["telemetry in a sandbox: unavailable: " + t["unavailable"]]
    out = ["Telemetry in a sandbox (default policy): on vs --no-telemetry"]
    for name, e in list(t["lockstep"].items()) + [("make", t["make"])]:
        out += comparison_lines(e)
    for name in ("exec_storm", "connect_storm"):
        e = t[name]
        out.append(f"  {name.replace('_', ' ')} in one sandbox: {e['rate_per_s']:.0f}/s, "
                   f"{e['done']} done; kernel events {e['events']}, in the stream "
                   f"{e['kernel_events_in_stream']}, dropped {e['drops']}")
    for name, g in t["guardrail_latency"].items():
        a, k = g["trigger_to_action_ms"], g["action_to_end_ms"]
        out.append(f"  guardrail ({name}): trigger to action median {a['median']:.1f} ms, "
                   f"max {a['max']:.1f} ms; action to sandbox end median {k['median']:.1f} ms")
    return out


# ---- report -----------------------------------------------------------------------------


def verdict(ok):
    return "met" if ok else "NOT MET"


def net_parameters(args):
    return {"net_bytes": args.net_bytes, "net_rounds": args.net_rounds,
            "gateway_calls": args.gateway_calls, "gateway_rounds": args.gateway_rounds,
            "provider_delay_us": args.provider_delay_us}


def measure_daemon(args, build, warden, progress):
    return daemon.measure_daemon(build, warden, args.daemon_trips, args.daemon_idle,
                                 args.daemon_clients, args.daemon_seconds, progress)


def measure_network(args, warden, bench_dir, rng, progress):
    return net.measure_net(warden, bench_dir, args.net_bytes, args.net_rounds,
                           args.gateway_calls, args.gateway_rounds, args.provider_delay_us,
                           rng, progress)


def build_results(args, info, cs, memory, slowdown, breakdown, audit, started, elapsed,
                  load0, telemetry, sandbox_tel, network, daemon_res):
    cold = {}
    for c in cs:
        entry = {"label": c.label, "argv": c.argv, "note": c.note}
        if c.unavailable:
            entry["unavailable"] = c.unavailable
        else:
            s = summary(c.samples)
            rates = [n / (wall / 1000.0) for n, wall in c.batches]
            entry.update({
                "samples": s["n"], "failures": c.failures, "batch": c.batch,
                "median_ms": s["median"], "p90_ms": s["p90"], "mean_ms": s["mean"],
                "min_ms": s["min"], "max_ms": s["max"],
                "rate_per_s_median_batch": statistics.median(rates),
                "rate_per_s_overall": sum(n for n, _ in c.batches) /
                (sum(w for _, w in c.batches) / 1000.0),
                "samples_ms": [round(x, 3) for x in c.samples],
            })
        cold[c.key] = entry
    w = cold["warden"]
    for k, e in cold.items():
        if "median_ms" in e and "median_ms" in w:
            e["median_ratio_to_warden"] = e["median_ms"] / w["median_ms"]
            e["p90_ratio_to_warden"] = e["p90_ms"] / w["p90_ms"]
            e["warden_median_ratio"] = w["median_ms"] / e["median_ms"]
            e["warden_p90_ratio"] = w["p90_ms"] / e["p90_ms"]

    targets = {}
    if "median_ms" in cold["bwrap"] and "median_ms" in w:
        ratio = w["median_ms"] / cold["bwrap"]["median_ms"]
        targets["cold_start_vs_bwrap"] = {
            "value": ratio, "target": f"<= {TARGETS['cold_start_ratio_vs_bwrap']}",
            "met": ratio <= TARGETS["cold_start_ratio_vs_bwrap"],
            "p90_ratio": w["p90_ms"] / cold["bwrap"]["p90_ms"]}
        if "median_ms" in cold.get("nsfloor", {}):
            # what the kernel alone takes here for a sandbox's namespaces and processes
            targets["cold_start_vs_bwrap"]["floor_ratio"] = (cold["nsfloor"]["median_ms"] /
                                                             cold["bwrap"]["median_ms"])
    if "median_ms" in w:
        rate = w["rate_per_s_overall"]
        targets["throughput"] = {"value": rate, "target": f">= {TARGETS['throughput_per_s']}",
                                 "met": rate >= TARGETS["throughput_per_s"]}
    peak = max(memory["warden"]["vmhwm_kib"])
    targets["supervisor_vmhwm"] = {"value": peak,
                                   "target": f"<= {TARGETS['supervisor_vmhwm_kib']} KiB",
                                   "met": peak <= TARGETS["supervisor_vmhwm_kib"]}
    for name, r in slowdown.items():
        for clock in ("cpu", "wall"):
            pct = r[clock]["slowdown_pct"]
            targets[f"slowdown_{name}_{clock}"] = {"value": pct,
                                                   "target": f"<= {TARGETS['slowdown_pct']}%",
                                                   "met": pct <= TARGETS["slowdown_pct"]}
    if "batched_records_per_s" in audit:
        rate = audit["batched_records_per_s"]
        targets["audit_records_per_s"] = {"value": rate,
                                          "target": f">= {TARGETS['audit_records_per_s']:.0f}",
                                          "met": rate >= TARGETS["audit_records_per_s"]}
    targets.update(sandbox_telemetry_targets(sandbox_tel))
    targets.update(net.net_targets(network))
    targets.update(daemon.daemon_targets(daemon_res))
    for k in memory:
        memory[k]["vmhwm_kib_median"] = statistics.median(memory[k]["vmhwm_kib"])
        memory[k]["vmhwm_kib_max"] = max(memory[k]["vmhwm_kib"])
    return {
        "started": started, "elapsed_s": round(elapsed, 1), "command": "make bench",
        "parameters": {"rounds": args.rounds, "memory_runs": args.memory_runs,
                       "slowdown_chunks": args.chunks, "c_chunk": args.c_chunk,
                       "python_chunk": args.py_chunk, "breakdown_chunks": args.breakdown_chunks,
                       "audit_records": args.audit_records, "audit_batch": args.audit_batch,
                       "audit_per_record": args.audit_per_record,
                       "audit_runs": args.audit_runs, "seed": args.seed,
                       **net_parameters(args)},
        "machine": info, "loadavg_start": load0, "loadavg_end": loadavg(),
        "cold_start": cold, "memory": memory, "slowdown": slowdown,
        "slowdown_breakdown": breakdown, "audit_log": audit, "telemetry": telemetry,
        "sandbox_telemetry": sandbox_tel, "network": network, "daemon": daemon_res,
        "targets": targets,
    }


def print_report(res):
    out = []
    m = res["machine"]
    out.append(f"machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, "
               f"kernel {m['kernel']}, cgroups {m['cgroups']}, euid {m['euid']}")
    out.append(f"load average at start {' '.join(res['loadavg_start'])}, "
               f"at end {' '.join(res['loadavg_end'])}; {res['elapsed_s']} s in all")
    for part, s in res.get("settled", {}).items():
        out.append(f"  before {part}: waited {s['waited_s']} s for the CPUs to settle "
                   f"({s['idle']:.0%} idle, load {' '.join(s['loadavg'])})")
    out.append("")
    out.append("Cold start, interleaved rounds (ms; x median / x p90: the contender's median "
               "and p90 over warden's)")
    out.append(f"  {'contender':<30} {'n':>5} {'median':>8} {'p90':>8} {'min':>8} "
               f"{'per s':>7} {'x median':>9} {'x p90':>7}")
    for k, e in res["cold_start"].items():
        if "unavailable" in e:
            out.append(f"  {e['label']:<30} unavailable: {e['unavailable']}")
            continue
        fail = f"  ({e['failures']} failed)" if e["failures"] else ""
        out.append(f"  {e['label']:<30} {e['samples']:>5} {e['median_ms']:>8.2f} "
                   f"{e['p90_ms']:>8.2f} {e['min_ms']:>8.2f} {e['rate_per_s_overall']:>7.1f} "
                   f"{e['median_ratio_to_warden']:>8.2f}x {e['p90_ratio_to_warden']:>6.2f}x{fail}")
    t = res["targets"].get("cold_start_vs_bwrap", {})
    if "floor_ratio" in t:
        out.append(f"  warden {t['value']:.2f}x bwrap; nsfloor (the kernel's part alone) "
                   f"{t['floor_ratio']:.2f}x bwrap")
    out.append("")
    out.append("Supervisor memory while `sleep 1` runs (KiB, that process alone)")
    for k, e in res["memory"].items():
        out.append(f"  {k:<15} VmHWM median {e['vmhwm_kib_median']:>6} max {e['vmhwm_kib_max']:>6}"
                   f"   VmRSS max {max(e['vmrss_kib'])}")
    out.append("")
    out.append("Syscall-heavy workloads, inside the default policy vs unsandboxed (s, loop only)")
    for k, e in res["slowdown"].items():
        out.append(f"  {e['description']}")
        for clock in ("cpu", "wall"):
            c = e[clock]
            out.append(f"    {clock:<4} median inside {c['median_inside_s']:.3f}  outside "
                       f"{c['median_outside_s']:.3f}  ratio {c['ratio']:.3f} "
                       f"({c['slowdown_pct']:+.1f}%), median of paired ratios "
                       f"{c['median_paired_ratio']:.3f}")
    b = res["slowdown_breakdown"]
    out.append("")
    out.append(f"Where it comes from: CPU ns per call, {b['chunks']} x {b['iterations_per_chunk']} "
               "each (ratio to unsandboxed)")
    names = [n for n in ("warden", "warden_no_landlock", "bwrap") if n in b["open"]]
    out.append(f"  {'call':<14} {'unsandboxed':>12}" + "".join(f" {n:>24}" for n in names))
    for kind in ("open", "stat", "getppid"):
        e = b[kind]
        label = "open+close" if kind == "open" else kind
        out.append(f"  {label:<14} {e['outside_ns']:>12.0f}" + "".join(
            f" {e[n]['ns']:>15.0f} ({e[n]['ratio']:.3f})" for n in names))
    out.append("")
    out += audit_report(res["audit_log"])
    out.append("")
    out += sandbox_telemetry_report(res["sandbox_telemetry"])
    out.append("")
    out += telemetry_report(res["telemetry"])
    out.append("")
    out += net.net_report(res["network"])
    out.append("")
    out += daemon.daemon_report(res["daemon"])
    out.append("")
    out.append("Targets")
    for k, t in res["targets"].items():
        v = t["value"]
        shown = f"{v:.3f}" if isinstance(v, float) else str(v)
        out.append(f"  {k:<28} {shown:>10}  target {t['target']:<14} {verdict(t['met'])}")
    print("\n".join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=20, help="cold-start rounds")
    ap.add_argument("--memory-runs", type=int, default=5)
    ap.add_argument("--chunks", type=int, default=100,
                    help="inside/outside chunk pairs per syscall workload")
    ap.add_argument("--c-chunk", type=int, default=20000, help="C loop iterations per chunk")
    ap.add_argument("--py-chunk", type=int, default=20000, help="os.stat calls per chunk")
    ap.add_argument("--breakdown-chunks", type=int, default=30,
                    help="chunk turns per call kind in the slowdown breakdown")
    ap.add_argument("--audit-records", type=int, default=100000,
                    help="audit records appended in groups")
    ap.add_argument("--audit-batch", type=int, default=256, help="audit records per commit")
    ap.add_argument("--audit-per-record", type=int, default=2000,
                    help="audit records appended with one commit each")
    ap.add_argument("--audit-runs", type=int, default=3)
    ap.add_argument("--audit-only", action="store_true",
                    help="measure only the audit log (no sandboxes)")
    ap.add_argument("--tel-chunks", type=int, default=50,
                    help="watched/unwatched chunk pairs per telemetry loop (50 x 20000: "
                         "10^6 calls each)")
    ap.add_argument("--tel-make-rounds", type=int, default=5,
                    help="watched/unwatched `make -j2` pairs")
    ap.add_argument("--telemetry-only", action="store_true",
                    help="measure only the eBPF telemetry (build/tests/telwatch)")
    ap.add_argument("--net-bytes", type=int, default=256 << 20,
                    help="bytes per bulk transfer (default 256 MiB)")
    ap.add_argument("--net-rounds", type=int, default=7,
                    help="interleaved rounds of transfers (one per client each)")
    ap.add_argument("--gateway-calls", type=int, default=400,
                    help="sequential calls per gateway/direct client and kind of call")
    ap.add_argument("--gateway-rounds", type=int, default=10,
                    help="rounds the gateway calls are taken in turns in")
    ap.add_argument("--provider-delay-us", type=int, default=2000,
                    help="the fake provider's pause after a stream's first delta")
    ap.add_argument("--net-only", action="store_true",
                    help="measure only the network: tunnels and the model gateway")
    ap.add_argument("--daemon-trips", type=int, default=200,
                    help="create/exec/destroy round trips through wardend, cold and pooled")
    ap.add_argument("--daemon-idle", type=int, default=1000,
                    help="idle sandboxes alive at once")
    ap.add_argument("--daemon-clients", type=int, default=50, help="concurrent API clients")
    ap.add_argument("--daemon-seconds", type=int, default=120,
                    help="how long the clients run (twice: plain, and wardend restarted)")
    ap.add_argument("--daemon-only", action="store_true",
                    help="measure only the daemon (wardend)")
    ap.add_argument("--vm-rounds", type=int, default=7,
                    help="interleaved rounds of vm baseline, cold and snapshot starts")
    ap.add_argument("--vm-only", action="store_true",
                    help="measure only the vm backend")
    ap.add_argument("--quick", action="store_true", help="a short run, to check the setup")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", default=None, help="JSON results (default BUILD/bench-results.json)")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.memory_runs, args.chunks, args.breakdown_chunks = 3, 2, 5, 3
        args.audit_records, args.audit_per_record, args.audit_runs = 20000, 300, 1
        args.tel_chunks, args.tel_make_rounds = 5, 1
        args.net_bytes, args.net_rounds, args.gateway_calls, args.gateway_rounds = \
            64 << 20, 2, 40, 2
        args.daemon_trips, args.daemon_idle, args.daemon_clients, args.daemon_seconds = \
            20, 50, 8, 10
        args.vm_rounds = 2
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 30)
    rng = random.Random(args.seed)

    build = os.path.abspath(args.build)
    warden = os.path.join(build, "warden")
    if not os.access(warden, os.X_OK):
        sys.exit(f"bench: {warden} is missing: run `make build` first")
    bench_dir = os.path.join(build, "bench")
    compile_helpers(bench_dir)
    # Every sandbox of the run writes its audit records (as users get them) to a log of
    # the run's own, not the host's.
    os.environ["WARDEN_AUDIT_LOG"] = os.path.join(bench_dir, "audit.log")
    os.environ["WARDEN_AUDIT_KEY"] = os.path.join(bench_dir, "audit.key")
    # A private copy, so that a rebuild during the run cannot swap the binary under it.
    shutil.copy2(warden, os.path.join(bench_dir, "warden"))
    warden = os.path.join(bench_dir, "warden")
    runc_root = os.path.join(bench_dir, "runc-state")
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t0 = time.monotonic()
    load0 = loadavg()

    def progress(msg):
        print(f"[{time.monotonic() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    info = machine_info(warden)
    def only(name, results, report, parameters=None, targets=None, as_text=False):
        """Write and print the results of one --NAME-only run."""
        res = {"started": started, "elapsed_s": round(time.monotonic() - t0, 1),
               "command": f"bench/run.py --{name}-only", "machine": info}
        if parameters is not None:
            res["parameters"] = {**parameters, "seed": args.seed}
        res.update({"loadavg_start": load0, "loadavg_end": loadavg(), **results})
        if targets is not None:
            res["targets"] = targets
        out = args.out or os.path.join(build, f"bench-{name}-results.json")
        with open(out, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")
        print("\n".join(report))
        for k, t in (targets or {}).items():
            value = f"{t['value']!s:>10}" if as_text else f"{t['value']:>10.3f}"
            print(f"  {k:<28} {value}  target {t['target']:<14} {verdict(t['met'])}")
        print(f"\nresults: {out}")

    if args.audit_only:
        audit = measure_audit(build, bench_dir, args.audit_records, args.audit_batch,
                              args.audit_per_record, args.audit_runs, progress)
        return only("audit", {"audit_log": audit}, audit_report(audit))
    if args.telemetry_only:
        stel = measure_sandbox_telemetry(warden, build, bench_dir, args.tel_chunks,
                                         args.py_chunk, args.c_chunk, args.tel_make_rounds, rng,
                                         progress)
        tel = measure_telemetry(build, bench_dir, args.tel_chunks, args.py_chunk, args.c_chunk,
                                args.tel_make_rounds, rng, progress)
        return only("telemetry", {"telemetry": tel, "sandbox_telemetry": stel},
                    sandbox_telemetry_report(stel) + [""] + telemetry_report(tel),
                    {"tel_chunks": args.tel_chunks, "py_chunk": args.py_chunk,
                     "c_chunk": args.c_chunk, "tel_make_rounds": args.tel_make_rounds},
                    sandbox_telemetry_targets(stel))
    if args.vm_only:
        v = vm.measure_vm(warden, bench_dir, args.vm_rounds, rng, progress)
        return only("vm", {"vm": v}, vm.vm_report(v), {"vm_rounds": args.vm_rounds},
                    vm.vm_targets(v))
    if args.daemon_only:
        d = measure_daemon(args, build, warden, progress)
        return only("daemon", {"daemon": d}, daemon.daemon_report(d),
                    {"trips": args.daemon_trips, "idle": args.daemon_idle,
                     "clients": args.daemon_clients, "seconds": args.daemon_seconds},
                    daemon.daemon_targets(d), as_text=True)
    if args.net_only:
        network = measure_network(args, warden, bench_dir, rng, progress)
        return only("net", {"network": network}, net.net_report(network) + ["", "Targets"],
                    net_parameters(args), net.net_targets(network))
    warden_dyn = link_dynamic_warden(build, bench_dir)
    cs = contenders(warden, warden_dyn, bench_dir, runc_root)
    for c in cs:
        c.preflight()
        if c.unavailable:
            progress(f"{c.key}: unavailable: {c.unavailable}")
    if cs[0].unavailable:
        sys.exit(f"bench: warden itself cannot run here: {cs[0].unavailable}")

    settled = {}
    settle("cold start", settled, progress, not args.quick)
    measure_cold_start(cs, bench_dir, args.rounds, rng, progress)
    with_bwrap = not next(c for c in cs if c.key == "bwrap").unavailable
    memory = measure_memory(warden, warden_dyn[0], with_bwrap, args.memory_runs, rng, progress)
    settle("slowdown", settled, progress, not args.quick)
    slowdown = measure_slowdown(warden, bench_dir, args.chunks, args.c_chunk, args.py_chunk,
                                rng, progress)
    breakdown = measure_breakdown(warden, bench_dir, with_bwrap, args.breakdown_chunks,
                                  args.c_chunk, rng, progress)
    shutil.rmtree(runc_root, ignore_errors=True)
    settle("audit", settled, progress, not args.quick)
    audit = measure_audit(build, bench_dir, args.audit_records, args.audit_batch,
                          args.audit_per_record, args.audit_runs, progress)

    settle("telemetry", settled, progress, not args.quick)
    sandbox_tel = measure_sandbox_telemetry(warden, build, bench_dir, args.tel_chunks,
                                            args.py_chunk, args.c_chunk, args.tel_make_rounds,
                                            rng, progress)
    telemetry = measure_telemetry(build, bench_dir, args.tel_chunks, args.py_chunk,
                                  args.c_chunk, args.tel_make_rounds, rng, progress)
    settle("network", settled, progress, not args.quick)
    network = measure_network(args, warden, bench_dir, rng, progress)
    settle("daemon", settled, progress, not args.quick)
    daemon_res = measure_daemon(args, build, warden, progress)
    settle("vm", settled, progress, not args.quick)
    vm_res = vm.measure_vm(warden, bench_dir, args.vm_rounds, rng, progress)

    res = build_results(args, info, cs, memory, slowdown, breakdown, audit, started,
                        time.monotonic() - t0, load0, telemetry, sandbox_tel, network,
                        daemon_res)
    res["vm"] = vm_res
    res["settled"] = settled
    res.setdefault("targets", {}).update(vm.vm_targets(vm_res))
    out = args.out or os.path.join(build, "bench-results.json")
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    print_report(res)
    print("\n" + "\n".join(vm.vm_report(vm_res)))
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
