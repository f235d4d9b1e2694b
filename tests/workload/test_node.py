"""Node.js (Debian's nodejs) under the default policy: worker_threads sharing memory with
Atomics, child processes, and the file system in the sandbox's writable places."""
import json
import os

from workload_util import check, write_file

WORKERS = r"""
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');
if (isMainThread) {
  const shared = new Int32Array(new SharedArrayBuffer(4 * 4));
  const jobs = [0, 1, 2, 3].map((id) => new Promise((resolve, reject) => {
    const w = new Worker(__filename, { workerData: { id, shared } });
    w.on('message', resolve);
    w.on('error', reject);
    w.on('exit', (code) => { if (code !== 0) reject(new Error('exit ' + code)); });
  }));
  Promise.all(jobs).then((results) => {
    console.log(JSON.stringify({
      results: results.sort((a, b) => a.id - b.id),
      shared: Array.from(shared),
      counter: shared.reduce((a, b) => a + b, 0),
    }));
  }).catch((e) => { console.error(e); process.exit(1); });
} else {
  const { id, shared } = workerData;
  let s = 0;
  for (let k = 1; k <= 100000 * (id + 1); k++) s += k;
  for (let k = 0; k < 1000; k++) Atomics.add(shared, id, 1);
  parentPort.postMessage({ id, s, threadId: require('worker_threads').threadId });
}
"""

CHILDREN = r"""
const cp = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n-'));
fs.writeFileSync(path.join(dir, 'x.json'), JSON.stringify({ a: [1, 2] }));
const back = JSON.parse(fs.readFileSync(path.join(dir, 'x.json'), 'utf8'));
const echo = cp.execFileSync('sh', ['-c', 'echo from-child; echo err >&2'],
                             { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
cp.exec('sort -r', (err, stdout) => {
  if (err) throw err;
  console.log(JSON.stringify({ tmp: os.tmpdir(), dirOk: dir.startsWith('/tmp/n-'), back,
                               echo, sorted: stdout, home: os.homedir() }));
}).stdin.end('a\nc\nb\n');
"""


def test_node_worker_threads(sandbox, workdir):
    write_file(os.path.join(workdir, "workers.js"), WORKERS)
    r = check(sandbox("node", "/work/workers.js", volumes={workdir: "/work"}))
    out = json.loads(r.stdout)
    assert [x["s"] for x in out["results"]] == [n * (n + 1) // 2 for n in
                                                (100000, 200000, 300000, 400000)]
    assert sorted(x["threadId"] for x in out["results"]) == [1, 2, 3, 4]
    assert out["shared"] == [1000, 1000, 1000, 1000]
    assert out["counter"] == 4000


def test_node_child_process_and_fs(sandbox):
    r = check(sandbox("node", "-e", CHILDREN))
    out = json.loads(r.stdout)
    assert out == {"tmp": "/tmp", "dirOk": True, "back": {"a": [1, 2]},
                   "echo": "from-child\n", "sorted": "c\nb\na\n", "home": "/home/agent"}
