"""What bench/run.py, bench/net.py and bench/daemon.py share."""


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
