"""Python workloads under the default policy: multiprocessing (fork, spawn and forkserver
pools, queues, locks), POSIX shared memory in /dev/shm, and the standard library an agent
reaches for (sqlite3, json, subprocess, threading, tempfile)."""
import json
import os

import pytest

from workload_util import check, write_file

PYTHON = "/usr/bin/python3"

MULTIPROCESSING = r'''
import json, multiprocessing as mp, os, sys

def square(x):
    return x * x

def whoami(_):
    return os.getpid()

def produce(q, n):
    for i in range(n):
        q.put({"i": i, "pid": os.getpid()})
    q.put(None)

def bump(counter, lock, n):
    for _ in range(n):
        with lock:
            counter.value += 1

if __name__ == "__main__":
    out = {}
    for method in ("fork", "spawn", "forkserver"):
        ctx = mp.get_context(method)
        with ctx.Pool(2) as pool:
            out[method] = {"sum": sum(pool.map(square, range(1000))),
                           "workers": len(set(pool.map(whoami, range(64), chunksize=1)))}
    q = mp.Queue()
    p = mp.Process(target=produce, args=(q, 500))
    p.start()
    items = []
    while (item := q.get()) is not None:
        items.append(item)
    p.join()
    out["queue"] = {"n": len(items), "in_order": [x["i"] for x in items] == list(range(500)),
                    "child_pid_differs": items[0]["pid"] != os.getpid(),
                    "exitcode": p.exitcode}
    counter, lock = mp.Value("i", 0), mp.Lock()
    procs = [mp.Process(target=bump, args=(counter, lock, 1000)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    out["locked_counter"] = counter.value
    print(json.dumps(out))
'''

SHARED_MEMORY = r'''
import json, multiprocessing as mp, os
from multiprocessing import shared_memory

def child(name):
    shm = shared_memory.SharedMemory(name=name)
    data = bytes(shm.buf[:5])
    shm.buf[5:10] = b"WORLD"
    shm.close()
    if data != b"hello":
        raise SystemExit(3)

if __name__ == "__main__":
    shm = shared_memory.SharedMemory(create=True, size=1 << 20)
    shm.buf[:5] = b"hello"
    listed = sorted(os.listdir("/dev/shm"))
    p = mp.get_context("spawn").Process(target=child, args=(shm.name,))
    p.start()
    p.join()
    result = bytes(shm.buf[:10]).decode()
    sl = shared_memory.ShareableList([1, "two", 3.0])
    again = shared_memory.ShareableList(name=sl.shm.name)
    shareable = list(again)
    again.shm.close()
    sl.shm.close()
    sl.shm.unlink()
    shm.close()
    shm.unlink()
    st = os.statvfs("/dev/shm")
    print(json.dumps({"name": shm.name, "listed": listed, "child_exit": p.exitcode,
                      "result": result, "shareable": shareable,
                      "after_unlink": os.listdir("/dev/shm"),
                      "shm_bytes": st.f_blocks * st.f_frsize}))
'''

STDLIB = r'''
import json, os, sqlite3, subprocess, sys, tempfile, threading, queue, hashlib, concurrent.futures

out = {}
with tempfile.TemporaryDirectory() as d:
    out["tempdir_parent"] = os.path.dirname(d)
    db = sqlite3.connect(os.path.join(d, "t.db"))
    db.execute("pragma journal_mode=wal")
    db.execute("create table kv (k text primary key, v integer)")
    db.executemany("insert into kv values (?, ?)", [(f"k{i}", i) for i in range(1000)])
    db.commit()
    out["sqlite"] = db.execute("select count(*), sum(v) from kv where v % 2 = 0").fetchone()
    db.close()
    out["tempdir_files"] = sorted(os.listdir(d))
with tempfile.NamedTemporaryFile("w+", suffix=".json") as f:
    json.dump({"nested": {"list": [1, 2, 3]}, "s": "\u00e9"}, f)
    f.flush()
    f.seek(0)
    out["json_roundtrip"] = json.load(f)

r = subprocess.run(["sh", "-c", "echo out; echo err >&2; exit 7"], capture_output=True,
                   text=True)
out["subprocess"] = [r.returncode, r.stdout, r.stderr]
p = subprocess.Popen([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
out["popen"] = p.communicate("piped")[0].strip()

results = queue.Queue()
def work(i):
    results.put((i, hashlib.sha256(str(i).encode()).hexdigest()[:8]))
threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()
out["threads"] = results.qsize()
with concurrent.futures.ThreadPoolExecutor(4) as ex:
    out["executor"] = sum(ex.map(lambda x: x * 2, range(100)))
with concurrent.futures.ProcessPoolExecutor(2) as ex:
    out["process_executor"] = sum(ex.map(abs, range(-50, 50)))
print(json.dumps(out))
'''


def _script(workdir, name, text):
    write_file(os.path.join(workdir, name), text)
    return f"/work/{name}"


def test_multiprocessing_pools_queue_lock(sandbox, workdir):
    path = _script(workdir, "mp.py", MULTIPROCESSING)
    r = check(sandbox(PYTHON, path, volumes={workdir: "/work"}, workdir="/work"))
    out = json.loads(r.stdout)
    for method in ("fork", "spawn", "forkserver"):
        assert out[method]["sum"] == sum(x * x for x in range(1000)), out
        assert out[method]["workers"] >= 1, out
    assert out["queue"] == {"n": 500, "in_order": True, "child_pid_differs": True,
                            "exitcode": 0}
    assert out["locked_counter"] == 4000


def test_shared_memory_in_dev_shm(sandbox, workdir):
    path = _script(workdir, "shm.py", SHARED_MEMORY)
    r = check(sandbox(PYTHON, path, volumes={workdir: "/work"}))
    out = json.loads(r.stdout)
    assert out["name"].lstrip("/") in out["listed"], out
    assert out["child_exit"] == 0
    assert out["result"] == "helloWORLD"
    assert out["shareable"] == [1, "two", 3.0]
    assert out["after_unlink"] == []
    assert out["shm_bytes"] > 1 << 20


def test_dev_shm_is_private_to_the_sandbox(sandbox, runner):
    """A segment left behind in one sandbox is not seen by the next, nor on the host."""
    r = check(sandbox(PYTHON, "-c", "from multiprocessing import shared_memory as s\n"
                      "m = s.SharedMemory(name='warden_workload_leak', create=True, size=64)\n"
                      "import os; print(os.listdir('/dev/shm'))"))
    assert "warden_workload_leak" in r.stdout
    assert not os.path.exists("/dev/shm/warden_workload_leak")
    r = check(sandbox("ls", "-A", "/dev/shm"))
    assert r.stdout == ""


def test_stdlib_sqlite_json_subprocess_threads_tempfile(sandbox):
    r = check(sandbox(PYTHON, "-c", STDLIB))
    out = json.loads(r.stdout)
    assert out["tempdir_parent"] == "/tmp"
    assert out["sqlite"] == [500, sum(range(0, 1000, 2))]
    assert "t.db" in out["tempdir_files"]
    assert out["json_roundtrip"] == {"nested": {"list": [1, 2, 3]}, "s": "\u00e9"}
    assert out["subprocess"] == [7, "out\n", "err\n"]
    assert out["popen"] == "PIPED"
    assert out["threads"] == 16
    assert out["executor"] == 9900
    assert out["process_executor"] == sum(abs(x) for x in range(-50, 50))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_survives_many_tasks(sandbox, method):
    """Workers are recycled (maxtasksperchild) so processes keep being created and reaped."""
    code = ("import multiprocessing as mp, operator\n"
            f"with mp.get_context('{method}').Pool(2, maxtasksperchild=5) as p:\n"
            "    print(sum(p.map(operator.neg, range(200), chunksize=1)))\n")
    r = check(sandbox(PYTHON, "-c", code))
    assert r.stdout.strip() == str(-sum(range(200)))
