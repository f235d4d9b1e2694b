"""A misbehaving "agent": it tries what a compromised or careless agent would try, then
does some honest work. Run by demo/run.sh inside `warden run`."""
import errno
import multiprocessing
import os
import socket
import subprocess
import sys


def report(what, ok, detail):
    mark = "BLOCKED " if not ok else "allowed "
    print(f"  [{mark}] {what:<44} {detail}", flush=True)


def try_read_secret():
    path = os.environ.get("DEMO_SECRET", "/root/.ssh/id_ed25519")
    for p in (path, "/root/.ssh/id_ed25519", os.path.expanduser("~/.ssh/id_ed25519")):
        try:
            with open(p) as f:
                f.read()
            report(f"read {p}", True, "secret leaked!")
            return
        except OSError as e:
            last = e
    report("read the user's SSH key", False, f"{last.strerror}")


def try_network():
    port = int(os.environ.get("DEMO_PORT", "0"))
    for host, p in (("127.0.0.1", port), ("1.1.1.1", 443)):
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect((host, p))
            report(f"connect to {host}:{p}", True, "connected")
        except OSError as e:
            report(f"connect to {host}:{p}", False, e.strerror or str(e))
        finally:
            s.close()


def try_env():
    leaked = [k for k in os.environ if "API_KEY" in k or "TOKEN" in k]
    report("find API keys in the environment", bool(leaked), leaked or "none present")


def try_fork_bomb():
    kids = []
    try:
        for _ in range(10000):
            pid = os.fork()
            if pid == 0:
                import time
                time.sleep(30)
                os._exit(0)
            kids.append(pid)
        report("fork 10000 processes", True, "all forked!")
    except OSError as e:
        report("fork 10000 processes", False, f"stopped after {len(kids)}: {e.strerror}")
    for k in kids:
        os.kill(k, 9)
        os.waitpid(k, 0)


def try_fill_disk():
    written = 0
    try:
        with open("/tmp/fill", "wb") as f:
            block = b"\0" * (1 << 20)
            for _ in range(10 * 1024):
                f.write(block)
                f.flush()
                written += 1
        report("write 10 GiB to /tmp", True, "disk filled!")
    except OSError as e:
        report("write 10 GiB to /tmp", False, f"stopped at {written} MiB: {e.strerror}")
    os.unlink("/tmp/fill")


def try_memory():
    r = subprocess.run([sys.executable, "-c", "b = bytearray(2 << 30); print('ok')"],
                       capture_output=True, text=True)
    if r.returncode == 0:
        report("allocate 2 GiB", True, "allocated")
    else:
        how = f"killed by signal {-r.returncode}" if r.returncode < 0 else f"exit {r.returncode}"
        report("allocate 2 GiB", False, f"{how}: over the memory limit")


def try_privilege():
    r = subprocess.run(["unshare", "--user", "--map-root-user", "true"], capture_output=True,
                       text=True)
    report("create a user namespace (unshare -Ur)", r.returncode == 0,
           r.stderr.strip().split(": ")[-1] if r.returncode else "became root")
    try:
        os.mkdir("/usr/local/evil")
        report("write into /usr", True, "system modified!")
    except OSError as e:
        report("write into /usr", False, e.strerror)
    r = subprocess.run(["ps", "-e", "--no-headers"], capture_output=True, text=True)
    report("see the host's processes", False,
           f"only {len(r.stdout.splitlines())} processes visible (the sandbox's own)")


def square_sum(n):
    return sum(i * i for i in range(n))


def honest_work():
    with multiprocessing.Pool(2) as pool:
        sums = pool.map(square_sum, [10**5, 2 * 10**5, 3 * 10**5, 4 * 10**5])
    with open("report.txt", "w") as f:
        f.write(f"sums of squares: {sums}\n")
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    print(f"  wrote report.txt in {os.getcwd()} as {user} "
          f"({len(sums)} results computed with multiprocessing)")


if __name__ == "__main__":
    print("agent: trying things it should not do")
    try_read_secret()
    try_env()
    try_network()
    try_privilege()
    try_fork_bomb()
    try_fill_disk()
    try_memory()
    print("agent: doing its actual job")
    honest_work()
