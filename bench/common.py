"""What bench/run.py, bench/net.py and bench/daemon.py share."""
import json
import os
import subprocess


class Looper:
    """A long-lived worker that does one unit of work (a chunk of a loop, a transfer, a
    batch of calls) per line on its stdin and answers with a line of JSON; started with
    the CPU affinity cpus (a set) when given."""

    def __init__(self, argv, cpus=None):
        self.argv = argv
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, bufsize=1,
                                  preexec_fn=pin)

    def turn(self):
        self.p.stdin.write("go\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            self.p.wait(timeout=30)
            raise RuntimeError(f"{self.argv}: exit {self.p.returncode}: "
                               f"{self.p.stderr.read().strip()}")
        return json.loads(line)

    def close(self):
        self.p.stdin.close()
        if self.p.wait(timeout=60) != 0:
            raise RuntimeError(f"{self.argv}: exit status {self.p.returncode}: "
                               f"{self.p.stderr.read().strip()}")


def percentile(xs, q):
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(q / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def take_turns(argvs, turns, rng, start, step):
    """start(argv) once per argv (a long-lived worker), then have the workers take turns,
    in a shuffled order each turn, for turns + 1 turns: step(worker) returns one result;
    the first turn is a warm-up and is dropped. Workers are closed at the end.
    Returns {name: [result, ...]}."""
    procs = {}
    try:
        for name, argv in argvs.items():
            procs[name] = start(argv)
        runs = {name: [] for name in argvs}
        for i in range(turns + 1):
            order = list(argvs)
            rng.shuffle(order)
            for name in order:
                r = step(procs[name])
                if i > 0:
                    runs[name].append(r)
    finally:
        for p in procs.values():
            p.close()
    return runs
