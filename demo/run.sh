#!/bin/sh
# make demo: a misbehaving "agent" in a warden sandbox, next to the same attempts on the
# host for comparison, and the agent's honest work (which just works).
set -eu
BUILD=${1:-build}
WARDEN=$(realpath "$BUILD/warden")
HERE=$(dirname "$(realpath "$0")")
DEMO=$(mktemp -d /tmp/warden-demo-XXXXXX)
trap 'kill $SERVER $PROVIDER 2>/dev/null || true; rm -rf "$DEMO"' EXIT
PROVIDER=""

# What the agent is after, set up on the host: a private key, an API key in the
# environment, a service on the host's loopback.
mkdir -p "$DEMO/home/.ssh" "$DEMO/workspace"
echo "-----BEGIN OPENSSH PRIVATE KEY----- (demo)" > "$DEMO/home/.ssh/id_ed25519"
chmod 600 "$DEMO/home/.ssh/id_ed25519"
cp "$HERE/agent.py" "$DEMO/workspace/"
python3 -m http.server --bind 127.0.0.1 0 --directory "$DEMO" >"$DEMO/server.log" 2>&1 &
SERVER=$!
PORT=""
for _ in $(seq 50); do
	PORT=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$DEMO/server.log" | head -1)
	[ -n "$PORT" ] && break
	sleep 0.1
done
export OPENAI_API_KEY="sk-demo-not-a-real-key" DEMO_SECRET="$DEMO/home/.ssh/id_ed25519"
export DEMO_PORT="$PORT"

echo "== on the host, the same files and services are right there:"
echo "  $(wc -c < "$DEMO_SECRET") bytes readable in $DEMO_SECRET"
echo "  OPENAI_API_KEY is set in this shell"
python3 -c "import socket; s=socket.create_connection(('127.0.0.1', $PORT)); print('  127.0.0.1:$PORT answers')"
echo
echo "== warden run --memory 256M --pids 64 --tmp-size 64M -v workspace:/workspace -- python3 agent.py"
"$WARDEN" run -q --memory 256M --pids 64 --tmp-size 64M --timeout 120 \
	-e DEMO_SECRET -e DEMO_PORT -v "$DEMO/workspace:/workspace" -w /workspace \
	-- python3 agent.py
status=$?
echo
echo "== back on the host: the agent exited with status $status; its work is in the volume:"
ls -l "$DEMO/workspace/report.txt"
cat "$DEMO/workspace/report.txt"
echo "   (owned by $(stat -c %U "$DEMO/workspace/report.txt"), who ran warden; the sandbox left nothing else behind)"

# The network by policy: proxy mode with an allowlist, and the model gateway in front of a
# stand-in provider (tests/net/fake_provider.py) whose key stays on the host.
python3 "$HERE/../tests/net/fake_provider.py" >"$DEMO/provider.json" &
PROVIDER=$!
for _ in $(seq 50); do
	[ -s "$DEMO/provider.json" ] && break
	sleep 0.1
done
PROVIDER_PORT=$(sed -n 's/.*"port": *\([0-9]*\).*/\1/p' "$DEMO/provider.json")
cat >"$DEMO/net.yaml" <<YAML
name: demo-net
network:
  mode: proxy
  allow: [docs.demo.test, metadata.demo.test, "127.0.0.1:$PORT"]
YAML
printf '127.0.0.1 docs.demo.test exfil.demo.test\n169.254.169.254 metadata.demo.test\n' \
	>"$DEMO/hosts"
cat >"$DEMO/gateway.yaml" <<YAML
version: 1
providers:
  demo: {type: openai, base_url: "http://127.0.0.1:$PROVIDER_PORT/v1", api_key_env: OPENAI_API_KEY}
models:
  demo-mini: {provider: demo, input_price: 0.15, output_price: 0.6}
policies:
  demo-net: {models: [demo-mini], budget: {cost_usd: 1}}
YAML
cp "$HERE/net-agent.py" "$DEMO/workspace/"
echo
echo "== warden run --policy net.yaml (proxy mode, allow: docs.demo.test) --gateway gateway.yaml -- python3 net-agent.py"
"$WARDEN" run -q --policy "$DEMO/net.yaml" --resolver-hosts "$DEMO/hosts" \
	--gateway "$DEMO/gateway.yaml" --events "$DEMO/events.jsonl" \
	--audit-log "$DEMO/audit.log" --audit-key "$DEMO/audit.key" \
	-e DEMO_PORT -v "$DEMO/workspace:/workspace:ro" -w /workspace -- python3 net-agent.py
echo
echo "== what warden recorded (events; refusals and model calls are also audit records):"
python3 - "$DEMO/events.jsonl" <<'PY'
import json, sys
for e in map(json.loads, open(sys.argv[1])):
    if e["kind"] == "net.refused":
        print(f"  net.refused  {e['proto']:<7} {e['host']}:{e.get('port', '')}  {e['reason']}")
    elif e["kind"] == "net.end":
        print(f"  net.end      {e['proto']:<7} {e['host']}:{e['port']}  "
              f"{e['bytes_in']} bytes in, {e['bytes_out']} out")
    elif e["kind"] == "model.call":
        print(f"  model.call   {e['model']:<14} status {e['status']}  "
              f"{e['input_tokens']}+{e['output_tokens']} tokens  ${e['cost_usd']:.6f}"
              + (f"  refused: {e['refused']}" if e.get("refused") else ""))
PY
"$WARDEN" audit verify "$DEMO/audit.log" --key "$DEMO/audit.key.pub" | head -1 | sed 's/^/  /'

# The same sandbox behind a hardware boundary: a microVM with a guest kernel of its own
# (TCG on hosts without a usable /dev/kvm: a few seconds), here on a small busybox root.
mkdir -p "$DEMO/vmroot/bin" "$DEMO/vmroot/etc" "$DEMO/vmroot/tmp"
cp "$(command -v busybox)" "$DEMO/vmroot/bin/busybox"
for a in sh uname echo cat sed head; do ln -s busybox "$DEMO/vmroot/bin/$a"; done
echo "root:x:0:0:root:/root:/bin/sh" >"$DEMO/vmroot/etc/passwd"
chmod -R a+rX "$DEMO/vmroot"
echo
echo "== warden run --isolation vm --rootfs vmroot -- uname -r   (the host runs $(uname -r))"
"$WARDEN" run -q --isolation vm --memory 256M --rootfs "$DEMO/vmroot" \
	-- sh -c 'echo "  guest kernel: $(uname -r); /proc/cpuinfo model: $(cat /proc/cpuinfo | sed -n "s/model name.*: //p" | head -1)"' ||
	echo "  (the vm backend could not run here: see the message above)"
