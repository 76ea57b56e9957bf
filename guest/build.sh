#!/usr/bin/env bash
# guest/build.sh — build pocketvm's default Linux guest from Debian packages.
#
#   guest/build.sh [--force] [OUTDIR]          default guest (default OUTDIR: build/guest)
#   guest/build.sh --stock [--force] [OUTDIR]  initramfs with modules for Debian's stock kernel
#
# Default guest outputs in OUTDIR:
#   vmlinux          uncompressed ELF kernel (PVH note; 64-bit entry)
#   bzImage          the same kernel as a gzip-compressed bzImage
#   kernel.config    its .config
#   System.map       its symbols (to map a RIP from an exit report)
#   initramfs.cpio   uncompressed newc cpio: busybox-static + guest/rootfs
#   cmdline.txt      copy of guest/cmdline.txt
# Each part is rebuilt only when its inputs change: OUTDIR/kernel.inputs and
# OUTDIR/initramfs.inputs record what the outputs were built from (package
# versions, compiler, sha256 of the recipe files); a match skips the build.
# The kernel tree lives in OUTDIR/linux-src (~1 GiB after a build).
#
# Needs: Debian packages linux-source-6.1 busybox-static gcc make bc flex bison
# libelf-dev libssl-dev xz-utils patch.  Missing ones are installed with
# apt-get when running as root (set POCKETVM_NO_APT=1 to refuse instead).
# JOBS=N overrides the make parallelism (default: nproc).
set -euo pipefail

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$GUEST_DIR")
SELF="$GUEST_DIR/build.sh"
LINUX_PKG=linux-source-6.1
LINUX_TARBALL=/usr/src/linux-source-6.1.tar.xz
BUSYBOX=/bin/busybox
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

log() { printf 'guest: %s\n' "$*" >&2; }
die() { printf 'guest: error: %s\n' "$*" >&2; exit 1; }

usage() {
	sed -n '2,6p' "$SELF" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

MODE=default
FORCE=0
OUTDIR=
while [ $# -gt 0 ]; do
	case "$1" in
	--stock) MODE=stock ;;
	--force) FORCE=1 ;;
	-h | --help) usage 0 ;;
	-*) printf 'guest: unknown option %s\n' "$1" >&2; usage 2 ;;
	*)
		[ -z "$OUTDIR" ] || die "more than one OUTDIR given"
		OUTDIR=$1
		;;
	esac
	shift
done
OUTDIR=${OUTDIR:-$REPO_DIR/build/guest}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)

# ---------------------------------------------------------------------------
# Dependencies

pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }
pkg_installed() {
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

# ensure_packages PKG... — install the packages that are not installed.
ensure_packages() {
	local missing=() p
	for p in "$@"; do
		pkg_installed "$p" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "${POCKETVM_NO_APT:-0}" != 0 ] || [ "$(id -u)" != 0 ] ||
		! command -v apt-get >/dev/null; then
		die "missing Debian packages: ${missing[*]} (apt-get install ${missing[*]})"
	fi
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
		apt-get update >&2
		apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
			die "apt-get install ${missing[*]} failed"
	fi
}

# ---------------------------------------------------------------------------
# Input manifests: what an output was built from.  Written next to the
# outputs; a rebuild is skipped when the recorded manifest equals the new one.

file_sums() { (cd "$GUEST_DIR" && sha256sum "$@"); }

rootfs_manifest() {
	(cd "$GUEST_DIR/rootfs" && find . -mindepth 1 | LC_ALL=C sort | while read -r f; do
		if [ -d "$f" ]; then
			printf 'dir %s\n' "$f"
		elif [ -L "$f" ]; then
			printf 'slink %s %s\n' "$f" "$(readlink "$f")"
		elif [ -x "$f" ]; then
			printf 'exec %s %s\n' "$f" "$(sha256sum <"$f" | cut -d' ' -f1)"
		else
			printf 'file %s %s\n' "$f" "$(sha256sum <"$f" | cut -d' ' -f1)"
		fi
	done)
}

kernel_manifest() {
	echo "recipe kernel 1"
	echo "$LINUX_PKG $(pkg_version "$LINUX_PKG")"
	echo "gcc $(gcc -dumpfullversion 2>/dev/null || gcc -dumpversion)"
	echo "binutils $(ld --version | head -n1)"
	file_sums kernel-fragment.config interpreted-ring0.patch build.sh
}

initramfs_manifest() {
	echo "recipe initramfs 1"
	echo "$LINUX_PKG $(pkg_version "$LINUX_PKG")"
	echo "busybox-static $(pkg_version busybox-static) $(sha256sum <"$BUSYBOX" | cut -d' ' -f1)"
	echo "gcc $(gcc -dumpfullversion 2>/dev/null || gcc -dumpversion)"
	file_sums build.sh tools/memhog.c
	rootfs_manifest
}

# up_to_date MANIFEST_FILE NEW_MANIFEST OUTPUT...
up_to_date() {
	local rec=$1 new=$2 f
	shift 2
	[ "$FORCE" = 0 ] || return 1
	[ -f "$rec" ] || return 1
	for f in "$@"; do [ -s "$f" ] || return 1; done
	[ "$(cat "$rec")" = "$new" ]
}

# install_output SRC DST — atomic copy into OUTDIR.
install_output() {
	cp "$1" "$2.tmp.$$"
	mv -f "$2.tmp.$$" "$2"
}

# ---------------------------------------------------------------------------
# Kernel tree: OUTDIR/linux-src, extracted from the Debian tarball and patched.
# Reused across builds (incremental make) while the source version and the
# patch are unchanged.

SRC="$OUTDIR/linux-src"

prepare_tree() {
	local want have=''
	want="$LINUX_PKG $(pkg_version "$LINUX_PKG") patch $(file_sums interpreted-ring0.patch | cut -d' ' -f1)"
	[ -f "$SRC/.pocketvm-tree" ] && have=$(cat "$SRC/.pocketvm-tree")
	if [ "$have" = "$want" ]; then
		return 0
	fi
	[ -f "$LINUX_TARBALL" ] || die "$LINUX_TARBALL not found (apt-get install $LINUX_PKG)"
	log "extracting $LINUX_TARBALL into $SRC"
	rm -rf "$SRC" "$SRC.tmp"
	mkdir -p "$SRC.tmp"
	tar -xJf "$LINUX_TARBALL" -C "$SRC.tmp" --strip-components=1
	log "applying interpreted-ring0.patch"
	patch -d "$SRC.tmp" -p1 --forward --batch --quiet <"$GUEST_DIR/interpreted-ring0.patch" ||
		die "interpreted-ring0.patch does not apply to $LINUX_PKG $(pkg_version "$LINUX_PKG")"
	printf '%s\n' "$want" >"$SRC.tmp/.pocketvm-tree"
	mv "$SRC.tmp" "$SRC"
}

# Options the VMM and the tests rely on.  merge_config.sh only warns when an
# option's dependencies are missing, so check what olddefconfig kept.
REQUIRED_Y="
	64BIT SMP X86_MPPARSE X86_LOCAL_APIC X86_IO_APIC X86_X2APIC
	HYPERVISOR_GUEST PARAVIRT KVM_GUEST PARAVIRT_CLOCK PVH
	PRINTK TTY SERIAL_8250 SERIAL_8250_CONSOLE
	BLK_DEV_INITRD BINFMT_ELF BINFMT_SCRIPT
	DEVTMPFS PROC_FS PROC_SYSCTL SYSFS TMPFS SHMEM EXT4_FS BLOCK BLK_DEV
	PCI PCI_MSI VIRTIO VIRTIO_PCI VIRTIO_BLK VIRTIO_NET VIRTIO_BALLOON
	VIRTIO_CONSOLE VIRTIO_INPUT INPUT INPUT_EVDEV HW_RANDOM HW_RANDOM_VIRTIO
	MEMORY_BALLOON BALLOON_COMPACTION COMPACTION MIGRATION PAGE_REPORTING
	PSI VM_EVENT_COUNTERS
	NET UNIX INET PACKET NETDEVICES
	FUTEX EPOLL MULTIUSER POSIX_TIMERS HIGH_RES_TIMERS
	HZ_100 UNWINDER_GUESS CC_OPTIMIZE_FOR_PERFORMANCE KERNEL_GZIP
"
REQUIRED_VALUE="NR_CPUS=8 HZ=100"
# Must stay off: ACPI (no tables from the VMM), and what the boot recipe for
# interpreted-ring0 hosts measured as slow or broken there.
REQUIRED_OFF="ACPI UNWINDER_ORC PTP_1588_CLOCK_KVM VT CC_OPTIMIZE_FOR_SIZE X86_5LEVEL"

check_config() {
	local cfg=$1 o bad=0 line want
	for o in $REQUIRED_Y; do
		if ! grep -qx "CONFIG_$o=y" "$cfg"; then
			printf 'guest: error: CONFIG_%s is not =y (got: %s)\n' "$o" \
				"$(grep -E "^(# )?CONFIG_${o}[= ]" "$cfg" || echo absent)" >&2
			bad=1
		fi
	done
	for o in $REQUIRED_VALUE; do
		if ! grep -qx "CONFIG_$o" "$cfg"; then
			printf 'guest: error: want CONFIG_%s (got: %s)\n' "$o" \
				"$(grep -E "^CONFIG_${o%%=*}=" "$cfg" || echo absent)" >&2
			bad=1
		fi
	done
	for o in $REQUIRED_OFF; do
		if grep -qx "CONFIG_$o=[ym]" "$cfg"; then
			printf 'guest: error: CONFIG_%s must be off\n' "$o" >&2
			bad=1
		fi
	done
	# Everything else in the fragment: warn only.
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*) o=${line%%=*} want=$line ;;
		"# CONFIG_"*" is not set") o=${line#\# } o=${o%% *} want= ;;
		*) continue ;;
		esac
		if [ -n "$want" ]; then
			grep -qxF "$want" "$cfg" || log "warning: fragment asks $want, config has: $(grep -E "^(# )?${o}[= ]" "$cfg" || echo absent)"
		else
			! grep -qE "^$o=[ym]" "$cfg" || log "warning: fragment asks $o off, config has it on"
		fi
	done <"$GUEST_DIR/kernel-fragment.config"
	[ "$bad" = 0 ] || die "kernel config lacks required options (see above; $cfg)"
}

build_kernel() {
	local manifest t0
	manifest=$(kernel_manifest)
	if up_to_date "$OUTDIR/kernel.inputs" "$manifest" \
		"$OUTDIR/vmlinux" "$OUTDIR/bzImage" "$OUTDIR/kernel.config"; then
		log "kernel up to date"
		return 0
	fi
	t0=$(date +%s)
	prepare_tree
	mkdir -p "$OUTDIR/logs"
	local klog="$OUTDIR/logs/kernel.log"
	local kmake=(make -C "$SRC" -j"$JOBS" KBUILD_BUILD_USER=pocketvm KBUILD_BUILD_HOST=pocketvm)
	: >"$klog"
	log "configuring (tinyconfig + kernel-fragment.config)"
	{
		"${kmake[@]}" tinyconfig &&
			(cd "$SRC" && scripts/kconfig/merge_config.sh -m .config "$GUEST_DIR/kernel-fragment.config") &&
			"${kmake[@]}" olddefconfig
	} >>"$klog" 2>&1 || { tail -n 30 "$klog" >&2; die "kernel configuration failed (log: $klog)"; }
	check_config "$SRC/.config"
	log "building vmlinux and bzImage with $JOBS jobs (~3 min on 2 cores; log: $klog)"
	"${kmake[@]}" vmlinux bzImage >>"$klog" 2>&1 ||
		{ tail -n 40 "$klog" >&2; die "kernel build failed (log: $klog)"; }
	install_output "$SRC/vmlinux" "$OUTDIR/vmlinux"
	install_output "$SRC/arch/x86/boot/bzImage" "$OUTDIR/bzImage"
	install_output "$SRC/.config" "$OUTDIR/kernel.config"
	install_output "$SRC/System.map" "$OUTDIR/System.map"
	printf '%s\n' "$manifest" >"$OUTDIR/kernel.inputs"
	log "kernel built in $(($(date +%s) - t0)) s: $OUTDIR/vmlinux $OUTDIR/bzImage"
}

# ---------------------------------------------------------------------------
# initramfs: an uncompressed newc cpio written by the kernel's gen_init_cpio
# from a generated list, so that no root privileges or device nodes on the
# host are needed and every entry is owned by root:root.

GEN_INIT_CPIO="$OUTDIR/tools/gen_init_cpio"

build_gen_init_cpio() {
	local want have='' src
	want="$LINUX_PKG $(pkg_version "$LINUX_PKG")"
	[ -f "$GEN_INIT_CPIO.version" ] && have=$(cat "$GEN_INIT_CPIO.version")
	[ -x "$GEN_INIT_CPIO" ] && [ "$have" = "$want" ] && return 0
	mkdir -p "$OUTDIR/tools"
	src="$SRC/usr/gen_init_cpio.c"
	if [ ! -f "$src" ] || [ "$(cut -d' ' -f1-2 "$SRC/.pocketvm-tree" 2>/dev/null)" != "$want" ]; then
		[ -f "$LINUX_TARBALL" ] || die "$LINUX_TARBALL not found (apt-get install $LINUX_PKG)"
		tar -xJf "$LINUX_TARBALL" -C "$OUTDIR/tools" --strip-components=2 \
			linux-source-6.1/usr/gen_init_cpio.c
		src="$OUTDIR/tools/gen_init_cpio.c"
	fi
	gcc -O2 -o "$GEN_INIT_CPIO" "$src"
	printf '%s\n' "$want" >"$GEN_INIT_CPIO.version"
}

# Applets that get a file of their own.  The shell runs every other applet by
# name without one (busybox-static is built with FEATURE_SH_STANDALONE);
# these are for exec() by path: #!/bin/sh scripts, the kernel's
# request_module() (/sbin/modprobe), #!/usr/bin/env.  Each initramfs entry
# costs tens of milliseconds to unpack on interpreted-ring0 hosts: all 267
# applet symlinks added ~19 s to the boot, so `busybox --install -s` is left
# to whoever wants them.
APPLET_LINKS="/bin/sh /sbin/modprobe /usr/bin/env"

# cpio_list_base — the directories, device node and busybox entries.
cpio_list_base() {
	local d l
	echo "# generated by guest/build.sh"
	for d in /bin /sbin /usr /usr/bin /dev /proc /sys /run /mnt /root /etc; do
		echo "dir $d 0755 0 0"
	done
	echo "dir /tmp 1777 0 0"
	# The kernel opens /dev/console for /init before devtmpfs is mounted.
	echo "nod /dev/console 0600 0 0 c 5 1"
	echo "file /bin/busybox $BUSYBOX 0755 0 0"
	echo "file /bin/memhog $OUTDIR/tools/memhog 0755 0 0"
	for l in $APPLET_LINKS; do
		echo "slink $l /bin/busybox 0777 0 0"
	done
}

# cpio_list_rootfs DIR — the files of a rootfs overlay (guest/rootfs).
cpio_list_rootfs() {
	local dir=$1 f
	(cd "$dir" && find . -mindepth 1 | LC_ALL=C sort) | while read -r f; do
		f=${f#.}
		if [ -d "$dir$f" ]; then
			echo "dir $f 0755 0 0"
		elif [ -L "$dir$f" ]; then
			echo "slink $f $(readlink "$dir$f") 0777 0 0"
		elif [ -x "$dir$f" ]; then
			echo "file $f $dir$f 0755 0 0"
		else
			echo "file $f $dir$f 0644 0 0"
		fi
	done
}

# memhog (guest/tools/memhog.c): a freestanding static binary that holds and
# frees a block of memory, for the balloon tests.
build_memhog() {
	mkdir -p "$OUTDIR/tools"
	gcc -static -nostdlib -ffreestanding -fno-tree-loop-distribute-patterns -O2 \
		-fno-stack-protector -fno-pie -no-pie -s -Wl,--build-id=none \
		-Wall -Wextra -Werror -o "$OUTDIR/tools/memhog" "$GUEST_DIR/tools/memhog.c"
}

check_busybox() {
	pkg_installed busybox-static || die "busybox-static is not installed (apt-get install busybox-static)"
	[ -x "$BUSYBOX" ] || die "$BUSYBOX missing (apt-get install --reinstall busybox-static)"
}

build_initramfs() {
	local manifest
	check_busybox
	manifest=$(initramfs_manifest)
	if up_to_date "$OUTDIR/initramfs.inputs" "$manifest" "$OUTDIR/initramfs.cpio"; then
		log "initramfs up to date"
		return 0
	fi
	build_gen_init_cpio
	build_memhog
	{
		cpio_list_base
		cpio_list_rootfs "$GUEST_DIR/rootfs"
	} | awk '!seen[$0]++' >"$OUTDIR/initramfs.list"
	# -t: fixed mtimes, so equal inputs give an identical archive.
	"$GEN_INIT_CPIO" -t 0 "$OUTDIR/initramfs.list" >"$OUTDIR/initramfs.cpio.tmp.$$" ||
		die "gen_init_cpio failed on $OUTDIR/initramfs.list"
	mv -f "$OUTDIR/initramfs.cpio.tmp.$$" "$OUTDIR/initramfs.cpio"
	printf '%s\n' "$manifest" >"$OUTDIR/initramfs.inputs"
	log "initramfs built: $OUTDIR/initramfs.cpio ($(stat -c %s "$OUTDIR/initramfs.cpio") bytes)"
}

# ---------------------------------------------------------------------------
# --stock: Debian's linux-image-amd64 with an initramfs that loads its virtio
# and ext4 modules.  For hosts with hardware virtualization only: the stock
# kernel does not boot on interpreted-ring0 hosts (see README.md).  Outputs in
# OUTDIR/stock: vmlinuz, initramfs.cpio, cmdline.txt.  The kernel package is
# the installed one when linux-image-amd64 is installed, else it is fetched
# with `apt-get download` and unpacked into OUTDIR/stock/pkg (no root needed,
# nothing installed on the host).

# Loaded by /init.
STOCK_MODULES="virtio_pci virtio_blk virtio_net virtio_balloon virtio_console
	virtio_input virtio_rng evdev ext4 crc32c_generic"
# Packed too, loaded on demand through modules.alias (crc32c_intel fails on
# CPUs without SSE4.2, so it is not loaded unconditionally).
STOCK_EXTRA_MODULES="crc32c_intel"

# stock_kernel_package — name and version of the kernel linux-image-amd64 pulls in.
stock_kernel_package() {
	local pkg ver
	if pkg_installed linux-image-amd64; then
		pkg=$(dpkg-query -W -f='${Depends}' linux-image-amd64 | sed 's/[ ,(].*//')
		pkg_installed "$pkg" || die "linux-image-amd64 is installed but $pkg is not"
		echo "$pkg $(pkg_version "$pkg") installed"
		return
	fi
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" { print $2; exit }')
	[ -n "$pkg" ] || die "apt-cache knows no linux-image-amd64 (run apt-get update)"
	ver=$(apt-cache show --no-all-versions "$pkg" | awk '$1 == "Version:" { print $2; exit }')
	echo "$pkg $ver download"
}

main_stock() {
	local sd="$OUTDIR/stock" kpkg kver how root manifest mods m stage
	ensure_packages busybox-static gcc xz-utils
	check_busybox
	read -r kpkg kver how <<<"$(stock_kernel_package)"
	manifest=$(
		echo "recipe stock 1"
		echo "$kpkg $kver"
		# shellcheck disable=SC2086 # one line, words split on purpose
		echo "modules" $STOCK_MODULES "extra" $STOCK_EXTRA_MODULES
		initramfs_manifest
		file_sums cmdline-stock.txt
	)
	mkdir -p "$sd"
	if up_to_date "$sd/stock.inputs" "$manifest" "$sd/vmlinuz" "$sd/initramfs.cpio"; then
		log "stock guest up to date"
		return 0
	fi
	local krel=${kpkg#linux-image-}
	if [ "$how" = installed ]; then
		root=
	else
		root="$sd/pkg"
		if [ "$(cat "$root/.pocketvm-pkg" 2>/dev/null || true)" != "$kpkg $kver" ]; then
			log "downloading $kpkg $kver"
			rm -rf "$sd/download" "$root"
			mkdir -p "$sd/download" "$root"
			# As root, apt would drop to _apt, who cannot write here.
			local aptopt=()
			[ "$(id -u)" != 0 ] || aptopt=(-o APT::Sandbox::User=root)
			(cd "$sd/download" && apt-get -q "${aptopt[@]}" download "$kpkg=$kver" >&2) ||
				die "apt-get download $kpkg=$kver failed"
			dpkg-deb -x "$sd/download/"*.deb "$root"
			rm -rf "$sd/download"
			printf '%s\n' "$kpkg $kver" >"$root/.pocketvm-pkg"
		fi
	fi
	local moddir="$root/lib/modules/$krel"
	[ -f "$root/boot/vmlinuz-$krel" ] || die "$root/boot/vmlinuz-$krel missing"
	[ -d "$moddir/kernel" ] || die "$moddir missing"
	if [ ! -f "$moddir/modules.dep" ]; then
		log "depmod for $krel"
		"$BUSYBOX" depmod -b "${root:-/}" "$krel"
	fi
	# Modules wanted plus everything they depend on (modules.dep lists the
	# transitive closure); modules built into the kernel are skipped.
	mods=$(awk -v want="$STOCK_MODULES $STOCK_EXTRA_MODULES" -v builtin="$moddir/modules.builtin" '
		function modname(p) { sub(/.*\//, "", p); sub(/\.ko(\.[a-z]+)?:?$/, "", p); gsub(/-/, "_", p); return p }
		BEGIN {
			n = split(want, w, /[ \t\n]+/)
			for (i = 1; i <= n; i++) if (w[i] != "") wanted[w[i]] = 1
			while ((getline line < builtin) > 0) built[modname(line)] = 1
		}
		{
			name = modname($1)
			if (!(name in wanted)) next
			found[name] = 1
			p = $1; sub(/:$/, "", p); print p
			for (i = 2; i <= NF; i++) print $i
		}
		END {
			for (k in wanted) if (!(k in found) && !(k in built))
				print "guest: warning: module " k " not found in " FILENAME > "/dev/stderr"
		}' "$moddir/modules.dep" | LC_ALL=C sort -u)
	stage="$sd/stage"
	rm -rf "$stage"
	mkdir -p "$stage/lib/modules/$krel" "$stage/etc"
	for m in $mods; do
		mkdir -p "$stage/lib/modules/$krel/$(dirname "$m")"
		cp "$moddir/$m" "$stage/lib/modules/$krel/$m"
	done
	cp "$moddir/modules.builtin" "$stage/lib/modules/$krel/" 2>/dev/null || true
	"$BUSYBOX" depmod -b "$stage" "$krel"
	# One line: /init reads it with the `read` builtin and runs `modprobe -a`.
	# shellcheck disable=SC2086 # one line, words split on purpose
	echo $STOCK_MODULES >"$stage/etc/pocketvm-modules"
	build_gen_init_cpio
	build_memhog
	{
		cpio_list_base
		cpio_list_rootfs "$GUEST_DIR/rootfs"
		cpio_list_rootfs "$stage"
	} | awk '!seen[$0]++' >"$sd/initramfs.list"
	"$GEN_INIT_CPIO" -t 0 "$sd/initramfs.list" >"$sd/initramfs.cpio.tmp.$$" ||
		die "gen_init_cpio failed on $sd/initramfs.list"
	mv -f "$sd/initramfs.cpio.tmp.$$" "$sd/initramfs.cpio"
	install_output "$root/boot/vmlinuz-$krel" "$sd/vmlinuz"
	install_output "$GUEST_DIR/cmdline-stock.txt" "$sd/cmdline.txt"
	printf '%s\n' "$manifest" >"$sd/stock.inputs"
	log "stock guest ($kpkg $kver, $(echo "$mods" | wc -w) modules): $sd/vmlinuz $sd/initramfs.cpio"
}

# ---------------------------------------------------------------------------

main_default() {
	local cmd missing=()
	for cmd in make gcc bc flex bison xz patch; do
		command -v "$cmd" >/dev/null || missing+=("$cmd")
	done
	[ -f /usr/include/libelf.h ] || missing+=(libelf-dev)
	[ -f /usr/include/openssl/opensslv.h ] || missing+=(libssl-dev)
	if [ ${#missing[@]} -gt 0 ] || ! pkg_installed "$LINUX_PKG" || ! pkg_installed busybox-static; then
		ensure_packages "$LINUX_PKG" busybox-static make gcc bc flex bison libelf-dev libssl-dev xz-utils patch
	fi
	build_kernel
	build_initramfs
	if ! cmp -s "$GUEST_DIR/cmdline.txt" "$OUTDIR/cmdline.txt" 2>/dev/null; then
		install_output "$GUEST_DIR/cmdline.txt" "$OUTDIR/cmdline.txt"
	fi
}

# One build per OUTDIR at a time (parallel make targets, concurrent tests).
exec 9>"$OUTDIR/.lock"
if command -v flock >/dev/null; then
	flock 9
fi

case "$MODE" in
default) main_default ;;
stock) main_stock ;;
esac
