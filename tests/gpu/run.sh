#!/bin/bash
# tests/gpu/run.sh: everything that needs an NVIDIA GPU, in one go of a few minutes.
#
#   tests/gpu/run.sh [BUILD_DIR]        (as root; BUILD_DIR defaults to build)
#
# Uses BUILD_DIR/warden, BUILD_DIR/warden-gpu and BUILD_DIR/tests/cudatest (built here
# with `make build` when missing). Writes a Markdown report to $OUT/gpu-results.md when
# $OUT is set, else to gpu-results.md, ready to paste into docs/gpu.md; every step's raw
# output goes to gpu-results.log beside it. A step that fails is reported and the others
# still run. Steps:
#   1. the device, the driver, the host (nvidia-smi, warden gpu list, cgroups)
#   2. a CUDA program (PTX vector add) inside a sandbox granted GPU 0, its grant and the
#      scrub at its end as the audit log recorded them
#   3. nvidia-smi inside; no NVIDIA node inside a sandbox without a grant
#   4. NVML numbers attributed to the sandbox: it holds 1 GiB while a process on the host
#      (outside any sandbox) holds 512 MiB of the same GPU; only the first may count
#   5. exclusive grants: a second sandbox asking for the same GPU is refused as busy; a GPU
#      that does not exist is refused with the list of those that do
#   6. the gpu.memory guardrail ends a sandbox that goes over
#   7. memset bandwidth, and a whole-device scrub (bytes, seconds, GiB/s)
#   8. warden gpu leakcheck: scrub off, scrub on, the negative control
set -u
BUILD=${1:-build}
REPORT_DIR=${OUT:-.}
mkdir -p "$REPORT_DIR"
MD="$REPORT_DIR/gpu-results.md"
LOG="$REPORT_DIR/gpu-results.log"
WORK=$(mktemp -d /tmp/warden-gpu-run.XXXXXX)
AUDIT=(--audit-log "$WORK/audit.log" --audit-key "$WORK/audit.key")
: >"$LOG"
export WARDEN_GPU_LOCK_DIR="$WORK/locks" # this run's grants only, nothing left behind

log() { printf '%s\n' "$*" | tee -a "$LOG" >&2; }
md() { printf '%s\n' "$*" >>"$MD"; }
# step NAME TIMEOUT CMD...: run, keep its output in $WORK/NAME.out, log it, set $RC.
step() {
	local name=$1 t=$2
	shift 2
	log "== $name: $*"
	timeout "$t" "$@" >"$WORK/$name.out" 2>&1
	RC=$?
	cat "$WORK/$name.out" >>"$LOG"
	log "-- $name: exit $RC"
}
# json EXPR <FILE: EXPR over d, the JSON document that FILE is or ends with.
json() {
	python3 -c "
import json, sys
t = sys.stdin.read().strip()
try:
    d = json.loads(t)
except ValueError:
    d = json.loads(t[t.index('{'):] if t.startswith('{') else t.splitlines()[-1])
print($1)" 2>/dev/null
}

if [ ! -x "$BUILD/warden" ] || [ ! -x "$BUILD/warden-gpu" ] || [ ! -x "$BUILD/tests/cudatest" ]; then
	log "building into $BUILD"
	(meson setup "$BUILD" >/dev/null 2>&1 || true) && ninja -C "$BUILD" warden warden-gpu tests/cudatest >>"$LOG" 2>&1 || {
		log "build failed (see $LOG)"
		exit 1
	}
fi
W=$(realpath "$BUILD/warden")
CUDATEST=$(realpath "$BUILD/tests/cudatest")
BIN=$(dirname "$CUDATEST")
RUN=("$W" run -q "${AUDIT[@]}" -v "$BIN:/opt/warden-test:ro")

: >"$MD"
md "### Results of tests/gpu/run.sh ($(date -u +%Y-%m-%dT%H:%MZ))"
md ""

# ---- 1. the machine -----------------------------------------------------------------------
step smi 30 nvidia-smi --query-gpu=index,name,uuid,memory.total,driver_version,mig.mode.current --format=csv,noheader
md "- device: \`$(head -n 4 "$WORK/smi.out" | tr '\n' ';')\`"
md "- host: \`$(uname -r)\`, $(. /etc/os-release && echo "$PRETTY_NAME"), cgroups: $(stat -fc %T /sys/fs/cgroup), running as uid $(id -u)"
step list 30 "$W" gpu list
UUID=$(json 'd["gpus"][0]["uuid"]' <"$WORK/list.out")
NGPU=$(json 'len(d["gpus"])' <"$WORK/list.out")
md "- \`warden gpu list\`: exit $RC, $NGPU GPU(s), GPU 0 = \`${UUID:-?}\`"
if [ -z "$UUID" ]; then
	md "- stopping: no GPU listed (see the log)"
	exit 1
fi

# ---- 2. a CUDA program in a sandbox --------------------------------------------------------
step cuda 120 "${RUN[@]}" --gpu 0 -- /opt/warden-test/cudatest
md "- CUDA program (PTX vector add, 2^20 elements) inside a sandbox granted GPU 0: exit $RC, \`$(tail -n 1 "$WORK/cuda.out")\`"
if [ "$RC" != 0 ]; then
	# Without /sys inside, some drivers' libcuda may refuse to start: find out whether that is it.
	printf 'filesystem:\n  read_only: [/usr, {path: /bin, optional: true}, {path: /lib, optional: true}, {path: /lib64, optional: true}, /etc, /sys]\n' >"$WORK/sys.yaml"
	step cuda_sys 120 "${RUN[@]}" --policy "$WORK/sys.yaml" --gpu 0 -- /opt/warden-test/cudatest
	md "  - the same with the host's /sys read-only inside: exit $RC, \`$(tail -n 1 "$WORK/cuda_sys.out")\`"
fi
python3 - "$WORK/audit.log" >"$WORK/audit.txt" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("kind") in ("device.grant", "gpu.scrub"):
        r = {k: v for k, v in r.items() if k not in ("prev", "v", "seq")}
        print(json.dumps(r))
EOF
md "- audit records of that sandbox (grant, scrub at its end):"
md '```'
head -n 2 "$WORK/audit.txt" >>"$MD"
md '```'

# ---- 3. nodes inside -----------------------------------------------------------------------
step smi_inside 60 "${RUN[@]}" --gpu 0 -- nvidia-smi -L
md "- \`nvidia-smi -L\` inside a sandbox granted GPU 0: exit $RC, \`$(head -n 1 "$WORK/smi_inside.out")\`"
step nodes_none 60 "${RUN[@]}" -- sh -c 'ls /dev | grep -c nvidia; ls /dev'
md "- NVIDIA nodes inside a sandbox without a grant: \`$(head -n 1 "$WORK/nodes_none.out")\` (ls /dev: $(tail -n +2 "$WORK/nodes_none.out" | tr '\n' ' '))"
step nodes_gpu 60 "${RUN[@]}" --gpu 0 -- sh -c 'ls /dev | grep nvidia | tr "\n" " "'
md "- NVIDIA nodes inside a sandbox granted GPU 0: \`$(cat "$WORK/nodes_gpu.out")\`"

# ---- 4. NVML attribution, 5. exclusive grants ------------------------------------------------
log "== nvml: a host process holding 512 MiB, a sandbox holding 1 GiB for 8 s, its events in $WORK/events.jsonl"
"$CUDATEST" --hold 512 9 >"$WORK/host_hold.out" 2>&1 &
HOST_HOLD=$!
sleep 2
"${RUN[@]}" --gpu 0 --events "$WORK/events.jsonl" -- /opt/warden-test/cudatest --hold 1024 8 >"$WORK/hold.out" 2>&1 &
HOLD=$!
sleep 4
step smi_apps 30 nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader
wait $HOLD
HOLD_RC=$?
wait $HOST_HOLD
cat "$WORK/hold.out" "$WORK/events.jsonl" >>"$LOG" 2>/dev/null
python3 - "$WORK/events.jsonl" >"$WORK/nvml.txt" <<'EOF'
import json, sys
best = None
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("kind") == "gpu.sample" and (best is None or e.get("sandbox_memory", 0) > best.get("sandbox_memory", 0)):
        best = e
print(json.dumps(best) if best else "no gpu.sample event")
EOF
md "- NVML attribution: sandbox holding 1 GiB (exit $HOLD_RC) beside a host process holding 512 MiB ($(tail -n 1 "$WORK/host_hold.out")); largest gpu.sample event: \`$(cat "$WORK/nvml.txt")\`; nvidia-smi meanwhile: \`$(tr '\n' ';' <"$WORK/smi_apps.out")\`"
"${RUN[@]}" --gpu 0 -- sleep 6 >"$WORK/holder.out" 2>&1 &
HOLDER=$!
sleep 3
step busy 30 "${RUN[@]}" --gpu 0 -- true
wait $HOLDER
md "- a second sandbox asking for GPU 0 while a first one (sleep 6, exit $?) holds it: exit $RC, \`$(tail -n 1 "$WORK/busy.out")\`"
step missing 30 "${RUN[@]}" --gpu 63 -- true
md "- a GPU that does not exist (\`--gpu 63\`): exit $RC, \`$(tail -n 1 "$WORK/missing.out")\`"

# ---- 6. the gpu.memory guardrail -------------------------------------------------------------
printf 'gpu:\n  devices: [0]\n  memory: 512M\n' >"$WORK/ceiling.yaml"
step ceiling 60 "${RUN[@]}" --policy "$WORK/ceiling.yaml" -- /opt/warden-test/cudatest --hold 1024 10
md "- gpu.memory 512M, the program holds 1 GiB for 10 s: exit $RC, \`$(grep -m1 guardrail "$WORK/ceiling.out" || tail -n 1 "$WORK/ceiling.out")\`"

# ---- 7. bandwidth and scrub -------------------------------------------------------------------
step bandwidth 120 "$W" gpu bandwidth 0
BW=$(json 'd["memset_gib_s"]' <"$WORK/bandwidth.out")
step scrub 300 "$W" gpu scrub 0 "${AUDIT[@]}"
SCRUB=$(tr -d '\n ' <"$WORK/scrub.out")
md "- cuMemsetD8 bandwidth (1 GiB buffer, 10 rounds): ${BW:-?} GiB/s"
md "- whole-device scrub (\`warden gpu scrub 0\`): exit $RC, \`$SCRUB\`"

# ---- 8. leak check ----------------------------------------------------------------------------
step leakcheck 600 "$W" gpu leakcheck 0
md "- \`warden gpu leakcheck 0\`: exit $RC, \`$(tr -d '\n ' <"$WORK/leakcheck.out")\`"
md ""
md "(raw output of every step: gpu-results.log)"
log "report: $MD"
cat "$MD"
