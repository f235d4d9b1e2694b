#!/bin/sh
# make demo: a misbehaving "agent" in a warden sandbox, next to the same attempts on the
# host for comparison, and the agent's honest work (which just works).
set -eu
BUILD=${1:-build}
WARDEN=$(realpath "$BUILD/warden")
HERE=$(dirname "$(realpath "$0")")
DEMO=$(mktemp -d /tmp/warden-demo-XXXXXX)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DEMO"' EXIT

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
