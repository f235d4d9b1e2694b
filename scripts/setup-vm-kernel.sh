#!/bin/sh
# The guest kernel of the vm backend (docs/vm.md): Debian's linux-image-cloud-amd64,
# fetched with `apt-get download`, unpacked into $WARDEN_VM_DIR (default
# /var/cache/warden/vm): vmlinuz, vmlinux (the same kernel uncompressed: QEMU starts it
# at its PVH entry, in 64-bit mode, which saves the emulated decompression and real-mode
# stages of a boot), the few modules the guest loads, as a cpio archive that
# warden appends to its own initramfs, and kernel.txt recording the package, its version
# and the SHA-256 of the package and of the kernel. Idempotent: nothing is fetched when
# kernel.txt already names the version the archive offers (or, offline, any version).
set -eu

dir=${WARDEN_VM_DIR:-/var/cache/warden/vm}
# What the guest needs that this kernel builds as modules, in load order (each after what
# it depends on; checked below with modinfo). ext4 and crc32c are built in.
MODULES="virtio_ring virtio virtio_mmio virtio_blk virtio_console overlay"

if [ -f "$dir/kernel.txt" ] && [ -f "$dir/vmlinux" ] && [ -f "$dir/modules.cpio" ]; then
	have=$(sed -n 's/^version=//p' "$dir/kernel.txt")
	want=$(apt-cache policy linux-image-cloud-amd64 2>/dev/null | sed -n 's/^ *Candidate: //p')
	if [ -z "$want" ] || [ "$want" = "(none)" ] || [ "$want" = "$have" ]; then
		exit 0
	fi
fi
if [ "$(id -u)" != 0 ]; then
	echo "setup: the vm backend's guest kernel is missing from $dir; run" \
		"scripts/setup.sh as root to fetch it" >&2
	exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/warden-kernel.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
cd "$work"
# The metapackage names the versioned image package it depends on.
pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$pkg" ] || {
	echo "setup: apt-cache knows no linux-image-cloud-amd64" >&2
	exit 1
}
echo "setup: fetching the vm guest kernel ($pkg)"
# _apt cannot write into a private directory: the download is made by root instead.
apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
deb=$(ls ./*.deb)
dpkg-deb -x "$deb" root
kver=$(ls root/lib/modules)
version=$(dpkg-deb -f "$deb" Version)

mkdir -p stage/lib/modules
order=""
for m in $MODULES; do
	ko=$(find "root/lib/modules/$kver" -name "$m.ko" | head -n 1)
	[ -n "$ko" ] || {
		echo "setup: module $m missing from $pkg" >&2
		exit 1
	}
	for dep in $(modinfo -F depends "$ko" | tr ',' ' '); do
		case " $order " in
		*" $dep "*) ;;
		*)
			echo "setup: module $m needs $dep before it" >&2
			exit 1
			;;
		esac
	done
	cp "$ko" stage/lib/modules/
	order="$order $m"
done
echo "$order" | tr ' ' '\n' | sed '/^$/d' >stage/lib/modules/order
(cd stage && find lib | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >modules.cpio

# The bzImage wraps the kernel compressed with LZ4 (CONFIG_KERNEL_LZ4): its payload
# starts at the LZ4 legacy frame's magic.
vmlinuz="root/boot/vmlinuz-$kver"
off=$(grep -obUaP '\x02\x21\x4c\x18' "$vmlinuz" | head -n 1 | cut -d: -f1)
[ -n "$off" ] || {
	echo "setup: no LZ4 payload in $vmlinuz" >&2
	exit 1
}
tail -c +$((off + 1)) "$vmlinuz" | lz4 -dc >vmlinux 2>/dev/null || true
readelf -n vmlinux 2>/dev/null | grep -q 'Xen.*0x00000012\|Unknown note type: (0x00000012)' || {
	echo "setup: the kernel extracted from $vmlinuz has no PVH entry" >&2
	exit 1
}

mkdir -p "$dir"
cp "$vmlinuz" "$dir/vmlinuz.new"
cp vmlinux "$dir/vmlinux.new"
cp modules.cpio "$dir/modules.cpio.new"
{
	echo "package=$pkg"
	echo "version=$version"
	echo "kernel=$kver"
	echo "modules=$(echo $order)"
	echo "sha256_deb=$(sha256sum "$deb" | cut -d' ' -f1)"
	echo "sha256_vmlinuz=$(sha256sum "$dir/vmlinuz.new" | cut -d' ' -f1)"
	echo "sha256_vmlinux=$(sha256sum "$dir/vmlinux.new" | cut -d' ' -f1)"
	echo "sha256_modules=$(sha256sum "$dir/modules.cpio.new" | cut -d' ' -f1)"
} >"$dir/kernel.txt.new"
mv "$dir/vmlinuz.new" "$dir/vmlinuz"
mv "$dir/vmlinux.new" "$dir/vmlinux"
mv "$dir/modules.cpio.new" "$dir/modules.cpio"
mv "$dir/kernel.txt.new" "$dir/kernel.txt"
chmod 0644 "$dir/vmlinuz" "$dir/vmlinux" "$dir/modules.cpio" "$dir/kernel.txt"
echo "setup: vm guest kernel $kver ($version) in $dir"
