#!/bin/sh
# Install, from Debian's archive, everything warden needs to build, test, benchmark and
# demo. Idempotent: packages already present are not touched, and apt-get runs only when
# something is missing.
set -eu

PACKAGES="
build-essential pkg-config meson ninja-build python3
clang clang-format llvm
libseccomp-dev libyaml-dev libcmocka-dev libjansson-dev libssl-dev libsodium-dev
libbpf-dev libelf-dev zlib1g-dev bpftool
libevent-dev libhttp-parser-dev
python3-pytest curl openssl python3-pip
libsqlite3-dev python3-yaml python3-setuptools python3-wheel
bubblewrap runc firejail
git nodejs busybox-static procps util-linux psmisc iproute2
qemu-system-x86 e2fsprogs cpio kmod lz4 binutils
"
# npm, for tests/mcp (the MCP SDK's client), from Debian unless one is there already:
# NodeSource's nodejs bundles its own npm and conflicts with Debian's package.
command -v npm >/dev/null 2>&1 || PACKAGES="$PACKAGES npm"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	exec "$(dirname "$0")/setup-vm-kernel.sh"
fi
if [ "$(id -u)" != 0 ]; then
	echo "setup: missing Debian packages:$missing" >&2
	echo "setup: run as root (or: sudo apt-get install -y$missing)" >&2
	exit 1
fi
echo "setup: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || apt-get update
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
exec "$(dirname "$0")/setup-vm-kernel.sh"
