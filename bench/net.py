"""The network benchmarks of bench/run.py: bulk transfer through proxy mode's tunnels, and
the latency the model gateway adds to a call (docs/benchmarks.md, "Network").

bench/netbench.c does the work on both sides: an origin that sends N bytes, a client that
reads them (directly, through CONNECT or through SOCKS5), a fake OpenAI provider and a
chat client that times each call. The same client binary runs on the host and in the
sandboxes (build/bench bound in read-only at /bench).
"""
import json
import os
import statistics
import subprocess

from common import Looper, percentile, take_turns

HERE = os.path.dirname(os.path.abspath(__file__))

TUNNEL_RATIO_TARGET = 0.80
PROVIDER_KEY_ENV = "WARDEN_BENCH_PROVIDER_KEY"
ORIGIN_NAME = "origin.test"


def compile_netbench(bench_dir):
    src = os.path.join(HERE, "netbench.c")
    dst = os.path.join(bench_dir, "netbench")
    if not os.path.exists(dst) or os.path.getmtime(dst) < os.path.getmtime(src):
        subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o", dst,
                        src], check=True)
    os.chmod(dst, 0o755)
    return dst


class Server:
    """`netbench origin` or `netbench provider`, on 127.0.0.1, optionally pinned."""

    def __init__(self, argv, cpus=None):
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  text=True, preexec_fn=pin)
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"{argv}: exit {self.p.wait()}")
        self.port = json.loads(line)["port"]

    def close(self):
        self.p.kill()
        self.p.wait()


def turns_of(argvs, turns, cpus, rng):
    """One Looper per argv, all started with the same affinity; turns + 1 turns in a
    shuffled order each, the first a warm-up that is dropped. {name: [result, ...]}."""
    return take_turns(argvs, turns, rng, lambda argv: Looper(argv, cpus), Looper.turn)


def write_file(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


# ---- bulk transfer -----------------------------------------------------------------------------


TRANSFER_ROWS = {
    "direct": "direct, on the host (the baseline)",
    "direct_sandbox": "direct, from a sandbox (--network host)",
    "connect": "HTTP CONNECT tunnel (proxy mode)",
    "socks": "SOCKS5 tunnel (proxy mode)",
}


def transfer_argvs(warden, bench_dir, nb, port, nbytes, hosts):
    """The clients of one origin: on the host, and in three sandboxes."""
    d = os.path.join(bench_dir, "net")
    proxy = write_file(os.path.join(d, "transfer-proxy.yaml"),
                       "name: benchnet\nnetwork:\n  mode: proxy\n"
                       f"  allow: [\"{ORIGIN_NAME}:{port}\", \"127.0.0.1:{port}\"]\n")
    host = write_file(os.path.join(d, "transfer-host.yaml"),
                      f"name: benchnet-direct\nnetwork:\n  mode: host\n  tcp_connect: [{port}]\n")
    vol = ["-v", f"{bench_dir}:/bench:ro", "--no-gateway"]
    tail = [str(port), ORIGIN_NAME, str(port), str(nbytes)]
    inside = lambda pol, extra: [warden, "run", "-q", "--policy", pol] + extra + vol + \
        ["--", "/bench/netbench", "get"]
    return {
        "direct": [nb, "get", "direct"] + tail,
        "direct_sandbox": inside(host, []) + ["direct"] + tail,
        "connect": inside(proxy, ["--resolver-hosts", hosts]) +
        ["connect", "3128", ORIGIN_NAME, str(port), str(nbytes)],
        "socks": inside(proxy, ["--resolver-hosts", hosts]) +
        ["socks", "1080", ORIGIN_NAME, str(port), str(nbytes)],
    }


def transfer_layout(warden, bench_dir, nb, nbytes, rounds, cpus, cc, hosts, rng):
    origin = Server([nb, "origin"] + ([cc] if cc else []), cpus)
    try:
        runs = turns_of(transfer_argvs(warden, bench_dir, nb, origin.port, nbytes, hosts),
                          rounds, cpus, rng)
    finally:
        origin.close()
    out = {"cpus": sorted(cpus) if cpus else sorted(os.sched_getaffinity(0)),
           "origin_cc": cc or read_sysctl(CC_SYSCTL), "reference": bool(cc), "rows": {}}
    for name, rs in runs.items():
        mbps = [r["bytes"] / r["seconds"] / 1e6 for r in rs]
        out["rows"][name] = {
            "label": TRANSFER_ROWS[name], "mb_per_s_median": statistics.median(mbps),
            "mb_per_s_min": min(mbps), "mb_per_s_max": max(mbps),
            "setup_ms_median": statistics.median(r["setup_seconds"] for r in rs) * 1e3,
            "client_cpu_s_median": statistics.median(r["cpu_seconds"] for r in rs),
            "seconds": [round(r["seconds"], 6) for r in rs]}
    base = out["rows"]["direct"]
    for name, e in out["rows"].items():
        e["ratio_to_direct"] = e["mb_per_s_median"] / base["mb_per_s_median"]
        # the same round's transfers: the machine's drift cancels out in these
        e["median_paired_ratio"] = statistics.median(
            d / s for s, d in zip(e["seconds"], base["seconds"]))
    return out


def read_sysctl(path):
    with open(path) as f:
        return f.read().strip()


CC_SYSCTL = "/proc/sys/net/ipv4/tcp_congestion_control"
# BBR (a common host default) paces the origin's sending, in the direct transfer and on
# the origin -> relay half of a tunnel alike; the reference layouts give the origin CUBIC,
# an algorithm that does not pace, to show the tunnels against an unpaced direct transfer.
UNPACED_CC = "cubic"


def measure_transfer(warden, bench_dir, nb, nbytes, rounds, rng, progress):
    """Each client is a long-lived process doing one transfer per turn; the four take turns
    in a shuffled order each round. Twice: every process free to run on any CPU, then
    every process (origin, warden's supervisor and its relay thread, the clients) pinned
    to one CPU, where the transfer's total CPU cost decides. Where the host's default
    congestion control is not CUBIC, both again with an origin on CUBIC (reference rows,
    not judged: the target is against the host as it is)."""
    hosts = write_file(os.path.join(bench_dir, "net", "hosts"), f"127.0.0.1 {ORIGIN_NAME}\n")
    out = {"bytes": nbytes, "rounds": rounds, "layouts": {}}
    one = {max(os.sched_getaffinity(0))}
    layouts = [("all_cpus", None, None), ("one_cpu", one, None)]
    if read_sysctl(CC_SYSCTL) != UNPACED_CC:
        layouts += [(f"all_cpus_{UNPACED_CC}_origin", None, UNPACED_CC),
                    (f"one_cpu_{UNPACED_CC}_origin", one, UNPACED_CC)]
    for layout, cpus, cc in layouts:
        out["layouts"][layout] = transfer_layout(warden, bench_dir, nb, nbytes, rounds, cpus,
                                                 cc, hosts, rng)
        progress(f"net: transfer ({layout}) done")
    return out


# ---- model gateway latency -------------------------------------------------------------------


def gateway_argvs(warden, bench_dir, port, batch):
    d = os.path.join(bench_dir, "net")
    gw = write_file(os.path.join(d, "gateway.yaml"),
                    "version: 1\nproviders:\n  bench:\n    type: openai\n"
                    f"    base_url: http://127.0.0.1:{port}/v1\n"
                    f"    api_key_env: {PROVIDER_KEY_ENV}\n"
                    "models:\n  bench-model: {provider: bench, input_price: 1, "
                    "output_price: 1}\n"
                    "policies:\n  benchnet:\n    models: [bench-model]\n")
    proxy = write_file(os.path.join(d, "gateway-policy.yaml"),
                       "name: benchnet\nnetwork:\n  mode: proxy\n  allow: []\n")
    host = write_file(os.path.join(d, "gateway-host.yaml"),
                      f"name: benchnet-direct\nnetwork:\n  mode: host\n  tcp_connect: [{port}]\n")
    vol = ["-v", f"{bench_dir}:/bench:ro"]
    out = {}
    for kind in ("whole", "stream"):
        chat = lambda port: ["--", "/bench/netbench", "chat", str(port), "/v1/chat/completions",
                             str(batch), kind]
        out[f"gateway_{kind}"] = [warden, "run", "-q", "--policy", proxy, "--gateway", gw] + \
            vol + chat(4141)
        out[f"direct_{kind}"] = [warden, "run", "-q", "--policy", host, "--no-gateway"] + \
            vol + chat(port)
    return out


def latency_summary(ms):
    return {"n": len(ms), "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99), "mean_ms": statistics.fmean(ms), "min_ms": min(ms),
            "max_ms": max(ms)}


def gateway_layout(warden, bench_dir, nb, batch, rounds, delay_us, cpus, rng):
    provider = Server([nb, "provider", str(delay_us)], cpus)
    try:
        runs = turns_of(gateway_argvs(warden, bench_dir, provider.port, batch), rounds, cpus,
                          rng)
    finally:
        provider.close()
    out = {"cpus": sorted(cpus) if cpus else sorted(os.sched_getaffinity(0))}
    for kind in ("whole", "stream"):
        entry = {}
        for path in ("gateway", "direct"):
            rs = runs[f"{path}_{kind}"]
            ms = [x for r in rs for x in r["ms"]]
            entry[path] = latency_summary(ms)
            entry[path]["reconnects"] = rs[-1]["reconnects"]
            entry[path]["samples_ms"] = [round(x, 4) for x in ms]
            if kind == "stream":
                entry[path]["whole_answer"] = latency_summary(
                    [x for r in rs for x in r["total_ms"]])
        for q in ("p50", "p99"):
            entry[f"added_{q}_ms"] = entry["gateway"][f"{q}_ms"] - entry["direct"][f"{q}_ms"]
        out[kind] = entry
    return out


def measure_gateway(warden, bench_dir, nb, calls, rounds, delay_us, rng, progress):
    """Sequential chat-completion calls, in rounds of calls/rounds per client taking turns in
    a shuffled order: through the gateway (a proxy-mode sandbox, its client calling
    127.0.0.1:4141) and directly (the same client in a sandbox sharing the host's network,
    calling the provider), non-streaming and streaming. Twice, like the transfer: free to
    use every CPU, then everything (provider, warden and its threads, clients) on one."""
    batch = max(1, calls // rounds)
    os.environ[PROVIDER_KEY_ENV] = "sk-bench-" + "0" * 24
    out = {"calls": batch * rounds, "batch": batch, "rounds": rounds,
           "provider_delay_us": delay_us, "layouts": {}}
    for layout, cpus in (("all_cpus", None), ("one_cpu", {max(os.sched_getaffinity(0))})):
        out["layouts"][layout] = gateway_layout(warden, bench_dir, nb, batch, rounds, delay_us,
                                                cpus, rng)
        progress(f"net: gateway ({layout}) done")
    return out


# ---- the whole part ----------------------------------------------------------------------------


def measure_net(warden, bench_dir, nbytes, rounds, calls, call_rounds, delay_us, rng,
                progress):
    os.makedirs(os.path.join(bench_dir, "net"), exist_ok=True)
    os.chmod(os.path.join(bench_dir, "net"), 0o755)
    nb = compile_netbench(bench_dir)
    return {"transfer": measure_transfer(warden, bench_dir, nb, nbytes, rounds, rng, progress),
            "gateway": measure_gateway(warden, bench_dir, nb, calls, call_rounds, delay_us, rng,
                                       progress)}


def net_targets(net):
    out = {}
    for layout, t in net["transfer"]["layouts"].items():
        if t.get("reference"):
            continue
        for row in ("connect", "socks"):
            v = t["rows"][row]["ratio_to_direct"]
            out[f"tunnel_{row}_{layout}"] = {"value": v, "target": f">= {TUNNEL_RATIO_TARGET}",
                                             "met": v >= TUNNEL_RATIO_TARGET}
    return out


def net_report(net):
    t = net["transfer"]
    out = [f"Bulk transfer, {t['bytes'] / 2**20:.0f} MiB per transfer, median of {t['rounds']} "
           "interleaved rounds (MB/s = 10^6 bytes/s; x direct: the median over the host's "
           "direct one; paired: median of the same round's ratios)"]
    for layout, lt in t["layouts"].items():
        out.append(f"  {layout.replace('_', ' ')} (CPUs {','.join(map(str, lt['cpus']))}; "
                   f"origin's congestion control {lt['origin_cc']}"
                   f"{', reference, not judged' if lt.get('reference') else ''})")
        for name, e in lt["rows"].items():
            out.append(f"    {e['label']:<42} {e['mb_per_s_median']:>8.0f} MB/s "
                       f"(min {e['mb_per_s_min']:.0f}, max {e['mb_per_s_max']:.0f})  "
                       f"x direct {e['ratio_to_direct']:.3f}  paired "
                       f"{e['median_paired_ratio']:.3f}  setup {e['setup_ms_median']:.2f} ms")
    g = net["gateway"]
    out.append("")
    out.append(f"Model gateway, {g['calls']} sequential calls per row (ms per call; the fake "
               f"provider sends a stream's first delta at once, the rest "
               f"{g['provider_delay_us']} us later)")
    for layout, lg in g["layouts"].items():
        out.append(f"  {layout.replace('_', ' ')} (CPUs {','.join(map(str, lg['cpus']))})")
        for kind, label in (("whole", "non-streaming: request to whole answer"),
                            ("stream", "streaming: request to first content delta")):
            e = lg[kind]
            out.append(f"    {label}")
            for path in ("gateway", "direct"):
                s = e[path]
                out.append(f"      {path:<8} p50 {s['p50_ms']:7.3f}  p90 {s['p90_ms']:7.3f}  "
                           f"p99 {s['p99_ms']:7.3f}  max {s['max_ms']:7.3f}"
                           + (f"   whole answer p50 {s['whole_answer']['p50_ms']:.3f} p99 "
                              f"{s['whole_answer']['p99_ms']:.3f}" if "whole_answer" in s
                              else ""))
            out.append(f"      added by the gateway: p50 {e['added_p50_ms']:+.3f} ms, "
                       f"p99 {e['added_p99_ms']:+.3f} ms")
    return out
