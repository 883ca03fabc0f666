#!/usr/bin/env bash
# tests/vm/run.sh AGENT_BINARY
#
# Boots Debian's 6.1 kernel in a QEMU guest (TCG, no KVM) with cgroup v2 and
# the memory controller, runs AGENT_BINARY (`watch -o jsonl`) while a static
# hog is OOM-killed in a kubelet-style container cgroup (memory.max 32 MiB),
# then a memory.oom.group kill of a hog, a shell and two sleeps, then a hog
# holding tmpfs pages, and checks the agent's JSONL with tests/vm/check.py.
# See tests/vm/README.md.
#
# Environment (all optional):
#   GPUSCOPE_VM_TIMEOUT=120        seconds before qemu is killed (boot timeout)
#   GPUSCOPE_VM_SETTLE=2           seconds the agent runs before the hog starts
#   GPUSCOPE_VM_AGENT_ARGS=""      extra arguments appended to `watch ...`
#   GPUSCOPE_VM_REFRESH_KERNEL=1   re-resolve/download the kernel package
#   GPUSCOPE_VM_KERNEL_PKG=NAME    use this linux-image package
#   GPUSCOPE_VM_VERBOSE=1          stream the guest console while it runs
#   GPUSCOPE_VM_KEEP=1             keep the run directory even on success
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="$HERE/cache"
TIMEOUT="${GPUSCOPE_VM_TIMEOUT:-120}"
SETTLE="${GPUSCOPE_VM_SETTLE:-2}"
AGENT_ARGS="${GPUSCOPE_VM_AGENT_ARGS:-}"

# The container cgroup the hog runs in (kubelet, systemd driver, containerd).
POD_UID="0f8c3b52-6a0e-4d8e-9d39-2b1f3c6a7e11"
CONTAINER_ID="9b4f2c7e1a3d5f6e8c0b2a4d6f8e1c3a5b7d9f0e2c4a6b8d0f1e3c5a7b9d2e4f"
LIMIT_BYTES=33554432
POD_SLICE="kubepods-burstable-pod${POD_UID//-/_}.slice"
CG_REL="kubepods.slice/kubepods-burstable.slice/$POD_SLICE/cri-containerd-$CONTAINER_ID.scope"
# A second container with memory.oom.group = 1 (the kubelet's cgroup v2
# default) holding a shell, the hog and two sleeps started after the hog:
# one group kill, the hog chosen, a sleep killed last.
GROUP_POD_UID="7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
GROUP_CONTAINER_ID="4e5f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091"
GROUP_CG_REL="kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${GROUP_POD_UID//-/_}.slice/cri-containerd-$GROUP_CONTAINER_ID.scope"
# A third whose hog maps 12 MiB of a tmpfs file first: shared memory in
# the cgroup's stat and in the victim's shmem-rss.
SHM_POD_UID="3b4c5d6e-7f80-4912-a3b4-c5d6e7f80912"
SHM_CONTAINER_ID="a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
SHM_CG_REL="kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${SHM_POD_UID//-/_}.slice/cri-containerd-$SHM_CONTAINER_ID.scope"

log() { printf 'vm-test: %s\n' "$*" >&2; }
die() { printf 'vm-test: FAIL: %s\n' "$*" >&2; exit 1; }

usage() {
	echo "usage: $0 AGENT_BINARY   (a static x86-64 gpuscope-agent; see tests/vm/README.md)" >&2
	exit 2
}

[ $# -eq 1 ] || usage
AGENT="$1"
[ -f "$AGENT" ] || die "agent binary '$AGENT' does not exist (build it first; see tests/vm/README.md)"
AGENT="$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")"

START=$SECONDS

# ---------------------------------------------------------------- packages
SUDO=""
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null || die "not root and no sudo: cannot install packages or create device nodes"
	SUDO="sudo"
fi

pkg_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

APT_UPDATED=0
apt_update_once() {
	if [ "$APT_UPDATED" = 0 ]; then
		log "apt-get update"
		$SUDO apt-get update -qq >&2 || die "apt-get update failed"
		APT_UPDATED=1
	fi
}

ensure_packages() {
	local missing=() p
	for p in qemu-system-x86 busybox-static cpio xz-utils libc6-dev gcc python3 binutils; do
		pkg_installed "$p" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing missing packages: ${missing[*]}"
	apt_update_once
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
		|| die "apt-get install ${missing[*]} failed"
}
ensure_packages

for tool in qemu-system-x86_64 cpio xz gcc python3 readelf dpkg-deb apt-get timeout flock; do
	command -v "$tool" >/dev/null || die "required tool '$tool' not found after installing packages"
done
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || BUSYBOX="$(command -v busybox || true)"
[ -n "$BUSYBOX" ] && [ -x "$BUSYBOX" ] || die "busybox not found (package busybox-static)"

is_static_elf() { # FILE -> 0 when it is an ELF with no program interpreter
	readelf -h "$1" >/dev/null 2>&1 || return 1
	! readelf -l "$1" 2>/dev/null | grep -q 'Requesting program interpreter'
}
is_static_elf "$BUSYBOX" || die "$BUSYBOX is not a static ELF (install busybox-static, not busybox)"

# A stand-in agent may be a script run by the guest's busybox sh; a real
# agent must be a static x86-64 ELF (the guest has no libc or loader).
if [ "$(head -c 2 "$AGENT")" != '#!' ]; then
	readelf -h "$AGENT" >/dev/null 2>&1 || die "agent '$AGENT' is not an ELF binary"
	readelf -h "$AGENT" | grep -q 'Machine:.*X86-64' || die "agent '$AGENT' is not an x86-64 binary"
	is_static_elf "$AGENT" || die "agent '$AGENT' is dynamically linked ($(readelf -l "$AGENT" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')); the guest has no libc: build it with RUSTFLAGS='-C target-feature=+crt-static' (see tests/vm/README.md)"
fi

# ---------------------------------------------------------------- kernel
mkdir -p "$CACHE/kernel"
exec 9>"$CACHE/.lock"
flock 9 # serialize downloads between concurrent runs

resolve_kernel_pkg() { # prints the package name to download
	if [ -n "${GPUSCOPE_VM_KERNEL_PKG:-}" ]; then
		echo "$GPUSCOPE_VM_KERNEL_PKG"
		return
	fi
	local abi=""
	# 1. What bookworm's metapackage points to (linux-image-6.1.0-N-amd64).
	abi="$(apt-cache depends linux-image-amd64 2>/dev/null \
		| awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.1\.0-[0-9]+-amd64$/ { print $2; exit }')"
	# 2. Else the highest 6.1 ABI the sources offer.
	if [ -z "$abi" ]; then
		abi="$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64(-unsigned)?$' 2>/dev/null \
			| awk '{ print $1 }' | sed 's/-unsigned$//' | sort -uV | tail -n 1)"
	fi
	[ -n "$abi" ] || return 1
	# Prefer the unsigned build (same kernel, no Secure Boot signature).
	if apt-cache show "$abi-unsigned" >/dev/null 2>&1; then
		echo "$abi-unsigned"
	else
		echo "$abi"
	fi
}

extract_vmlinux() { # VMLINUZ OUT: the xz payload (FD 37 7A 58 5A 00) of a bzImage
	python3 - "$1" "$2" <<'PY'
import subprocess, sys
src, dst = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
magic = b"\xfd7zXZ\x00"
off = data.find(magic)
tried = 0
while off != -1:
    tried += 1
    p = subprocess.run(["xz", "-dc", "--single-stream"], input=data[off:],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if p.stdout[:4] == b"\x7fELF":
        open(dst, "wb").write(p.stdout)
        print(f"xz payload at offset {off}: {len(p.stdout)} bytes", file=sys.stderr)
        sys.exit(0)
    off = data.find(magic, off + 1)
print(f"no xz payload decompressing to an ELF in {src} ({tried} candidates)", file=sys.stderr)
sys.exit(1)
PY
}

fetch_kernel() {
	local pkg ver dir tmp deb vmlinuz
	pkg="$(resolve_kernel_pkg || true)"
	if [ -z "$pkg" ]; then
		apt_update_once
		pkg="$(resolve_kernel_pkg || true)"
	fi
	[ -n "$pkg" ] || die "kernel download: no linux-image-6.1.0-*-amd64 package in the apt sources (apt-cache search found none)"
	ver="$(apt-cache policy "$pkg" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')"
	if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
		apt_update_once
		ver="$(apt-cache policy "$pkg" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')"
	fi
	[ -n "$ver" ] && [ "$ver" != "(none)" ] || die "kernel download: package $pkg has no installable candidate"
	dir="$CACHE/kernel/${pkg}_${ver}"
	if [ ! -s "$dir/vmlinux" ]; then
		log "downloading $pkg $ver (~70 MB, once)"
		tmp="$(mktemp -d "$CACHE/kernel/dl.XXXXXX")"
		# _apt cannot write here; apt then downloads as root with a notice.
		(cd "$tmp" && apt-get download -q "$pkg=$ver" >&2) \
			|| { apt_update_once; (cd "$tmp" && apt-get download -q "$pkg=$ver" >&2); } \
			|| { rm -rf "$tmp"; die "kernel download: apt-get download $pkg=$ver failed"; }
		deb="$(ls "$tmp"/*.deb 2>/dev/null | head -n 1 || true)"
		[ -n "$deb" ] || { rm -rf "$tmp"; die "kernel download: apt-get download left no .deb"; }
		log "extracting /boot from $(basename "$deb")"
		# Same as `dpkg-deb -x`, but skips writing the ~400 MB of modules.
		dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*' './boot/config-*' \
			|| { rm -rf "$tmp"; die "kernel extraction: no ./boot/vmlinuz-* in $deb"; }
		vmlinuz="$(ls "$tmp"/boot/vmlinuz-* 2>/dev/null | head -n 1 || true)"
		[ -n "$vmlinuz" ] || { rm -rf "$tmp"; die "kernel extraction: no ./boot/vmlinuz-* in $deb"; }
		mkdir -p "$tmp/out"
		cp "$vmlinuz" "$tmp/out/vmlinuz"
		cp "$tmp"/boot/config-* "$tmp/out/config" 2>/dev/null || true
		extract_vmlinux "$tmp/out/vmlinuz" "$tmp/out/vmlinux" \
			|| { rm -rf "$tmp"; die "kernel extraction: could not decompress the xz payload of $(basename "$vmlinuz")"; }
		rm -rf "$dir"
		mv "$tmp/out" "$dir"
		rm -rf "$tmp"
	fi
	echo "${pkg}_${ver}" >"$CACHE/kernel/current"
}

KDIR=""
if [ -z "${GPUSCOPE_VM_REFRESH_KERNEL:-}" ] && [ -z "${GPUSCOPE_VM_KERNEL_PKG:-}" ] \
	&& [ -s "$CACHE/kernel/current" ] && [ -s "$CACHE/kernel/$(cat "$CACHE/kernel/current")/vmlinux" ]; then
	KDIR="$CACHE/kernel/$(cat "$CACHE/kernel/current")"
else
	fetch_kernel
	KDIR="$CACHE/kernel/$(cat "$CACHE/kernel/current")"
fi
flock -u 9
KERNEL="$KDIR/vmlinux"
KERNEL_NAME="$(basename "$KDIR")"
if [ -s "$KDIR/config" ]; then
	for opt in CONFIG_MEMCG CONFIG_PSI CONFIG_DEVTMPFS; do
		grep -q "^$opt=y" "$KDIR/config" || log "warning: kernel config lacks $opt=y"
	done
fi
log "kernel: $KERNEL_NAME"

# ---------------------------------------------------------------- initramfs
RUN="$(mktemp -d "$CACHE/run.XXXXXX")"
ROOT="$RUN/root"
mkdir -p "$ROOT"/{bin,dev,proc,sys,tmp}

gcc -static -O2 -Wall -o "$ROOT/hog" "$HERE/hog.c" \
	|| die "compiling tests/vm/hog.c with gcc -static failed (is libc6-dev installed?)"
cp "$BUSYBOX" "$ROOT/bin/busybox"
ln -s busybox "$ROOT/bin/sh"
cp "$AGENT" "$ROOT/gpuscope-agent"
chmod 755 "$ROOT/gpuscope-agent"
# The kernel's built-in initramfs normally provides /dev/console already.
[ -n "$SUDO" ] || mknod -m 600 "$ROOT/dev/console" c 5 1 2>/dev/null || true

cat >"$ROOT/init" <<EOF
#!/bin/sh
CG=/sys/fs/cgroup/$CG_REL
CG2=/sys/fs/cgroup/$GROUP_CG_REL
CG3=/sys/fs/cgroup/$SHM_CG_REL
SETTLE=$SETTLE
AGENT_ARGS="$AGENT_ARGS"
EOF
cat >>"$ROOT/init" <<'EOF'
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
echo # SeaBIOS leaves the cursor mid-line
mkdir -p /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup || echo "=== HARNESS-ERROR cannot mount cgroup2"
# Kernel messages stay in /dev/kmsg (and the dmesg section below) but off
# the console, so they cannot interleave with the marked sections.
echo 1 >/proc/sys/kernel/printk

say() { echo "=== $*"; }
alive() { [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
enable_controllers() { # DIR: enable memory (and cpu, io, pids if present) for children
	avail=" $(cat "$1/cgroup.controllers") "
	for c in memory cpu io pids; do
		case "$avail" in
		*" $c "*) echo "+$c" >"$1/cgroup.subtree_control" 2>/dev/null || say "WARN cannot enable $c in $1" ;;
		*) [ "$c" = memory ] && say "HARNESS-ERROR memory controller not available in $1" ;;
		esac
	done
}

say "GUEST kernel: $(uname -r)"
say "GUEST /dev/kmsg: $([ -c /dev/kmsg ] && echo present || echo missing)"
say "GUEST /proc/pressure: $(ls /proc/pressure 2>/dev/null | tr '\n' ' ')"
say "GUEST root controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
say "GUEST mem total: $(grep MemTotal /proc/meminfo)"

enable_controllers /sys/fs/cgroup
make_cgroup() { # PATH: create it and its parents, memory enabled down to it
	dir=/sys/fs/cgroup
	rel=${1#/sys/fs/cgroup/}
	while [ -n "$rel" ]; do
		part=${rel%%/*}
		[ "$part" = "$rel" ] && rel="" || rel=${rel#*/}
		dir="$dir/$part"
		mkdir -p "$dir"
		[ -n "$rel" ] && enable_controllers "$dir"
	done
	echo 33554432 >"$1/memory.max" || say "HARNESS-ERROR cannot write $1/memory.max"
}
make_cgroup "$CG"
make_cgroup "$CG2"
make_cgroup "$CG3"
for c in "$CG2" "$CG3"; do
	echo 1 >"$c/memory.oom.group" || say "HARNESS-ERROR cannot write $c/memory.oom.group"
done
say "GUEST container controllers: $(cat "$CG/cgroup.controllers")"
say "GUEST container memory.max: $(cat "$CG/memory.max")"

AGENT=""
if [ -x /gpuscope-agent ]; then
	/gpuscope-agent watch -o jsonl --cgroup-root /sys/fs/cgroup --proc-root /proc --kmsg /dev/kmsg $AGENT_ARGS >/out.jsonl 2>/agent.log &
	AGENT=$!
	say "AGENT-STARTED pid $AGENT"
	# A second agent without the kernel log: only memory.events (inotify)
	# can tell it about the kill. Its sampler runs once at the start (the
	# baseline, which registers the notifier) and not again before the
	# agents are stopped, so that it cannot see the counter move first
	# ('poll'): under TCG's slow threads it sometimes did.
	/gpuscope-agent watch -o jsonl --cgroup-root /sys/fs/cgroup --proc-root /proc --kmsg /nonexistent-kmsg --interval 10m --fast-interval 10m $AGENT_ARGS >/out-notify.jsonl 2>/agent-notify.log &
	AGENT2=$!
	say "AGENT2-STARTED pid $AGENT2"
else
	say "HARNESS-ERROR /gpuscope-agent missing"
fi
sleep "$SETTLE"
if [ -n "$AGENT" ] && ! alive "$AGENT"; then
	wait "$AGENT"
	say "AGENT-EXITED-EARLY status $?"
fi

say "HOG-START /hog 100 in $CG"
sh -c "echo \$\$ >'$CG/cgroup.procs' && exec /hog 100"
say "HOG-EXIT $?"
sleep 1

# The group: the shell, the hog (1 MiB every 25 ms) and two sleeps that
# start after it, so the kernel's last Killed process line is not the hog.
say "GROUP-START in $CG2"
sh -c "echo \$\$ >'$CG2/cgroup.procs' && { /hog 100 25 & sleep 0.3; sleep 1000 & sleep 1000 & wait; }"
say "GROUP-EXIT $?"
sleep 1

mkdir -p /stage && mount -t tmpfs -o size=64m tmpfs /stage || say "HARNESS-ERROR cannot mount a tmpfs"
say "SHM-START in $CG3"
sh -c "echo \$\$ >'$CG3/cgroup.procs' && exec /hog 100 0 /stage/batch 12"
say "SHM-EXIT $?"
sleep 1

for pid in $AGENT ${AGENT2:-}; do
	alive "$pid" || continue
	kill -TERM "$pid"
	i=0
	while alive "$pid" && [ $i -lt 20 ]; do sleep 0.25; i=$((i + 1)); done
	if alive "$pid"; then
		say "AGENT-IGNORED-SIGTERM pid $pid (killed with SIGKILL)"
		kill -KILL "$pid"
	fi
	wait "$pid"
	say "AGENT-EXIT pid $pid status $? (143 = SIGTERM default action)"
done
sync

say OUT-BEGIN
cat /out.jsonl 2>/dev/null
echo
say OUT-END
say OUT2-BEGIN
cat /out-notify.jsonl 2>/dev/null
echo
say OUT2-END
say AGENT2-LOG-BEGIN
cat /agent-notify.log 2>/dev/null
say AGENT2-LOG-END
say AGENT-LOG-BEGIN
cat /agent.log 2>/dev/null
say AGENT-LOG-END
say MEMORY-EVENTS-BEGIN
cat "$CG/memory.events"
say MEMORY-EVENTS-END
say MEMORY-EVENTS-GROUP-BEGIN
cat "$CG2/memory.events"
say MEMORY-EVENTS-GROUP-END
say MEMORY-EVENTS-SHM-BEGIN
cat "$CG3/memory.events"
say MEMORY-EVENTS-SHM-END
say "SHM-STAT $(grep '^shmem ' "$CG3/memory.stat")"
say MEMORY-PRESSURE-BEGIN
cat "$CG/memory.pressure"
say MEMORY-PRESSURE-END
say "MEMORY-PEAK $(cat "$CG/memory.peak" 2>/dev/null)"
say DMESG-OOM-BEGIN
dmesg | grep -E 'oom-kill|Killed process|invoked oom-killer|memory: usage|Tasks in|already exiting'
say DMESG-OOM-END
say GUEST-DONE
poweroff -f
EOF
chmod 755 "$ROOT/init"

(cd "$ROOT" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet) >"$RUN/initramfs.cpio" \
	|| die "building the initramfs with cpio failed"

# ---------------------------------------------------------------- boot
CONSOLE="$RUN/console.log"
log "booting (timeout ${TIMEOUT}s), run dir $RUN"
BOOT_START=$SECONDS
QEMU=(timeout -k 5 "$TIMEOUT" qemu-system-x86_64 -accel tcg -m 256M -smp 1 -nodefaults -nographic
	-serial mon:stdio -nic none -no-reboot
	-kernel "$KERNEL" -initrd "$RUN/initramfs.cpio" -append "console=ttyS0 panic=-1 quiet")
set +e
if [ -n "${GPUSCOPE_VM_VERBOSE:-}" ]; then
	"${QEMU[@]}" </dev/null 2>&1 | tee "$CONSOLE"
	QRC=${PIPESTATUS[0]}
else
	"${QEMU[@]}" </dev/null >"$CONSOLE" 2>&1
	QRC=$?
fi
set -e
BOOT_SECS=$((SECONDS - BOOT_START))

# Console as plain text: no CRs, no terminal escape sequences from SeaBIOS.
sed -e 's/\r$//' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' "$CONSOLE" >"$RUN/console.txt"

dump_console() {
	echo "----- guest console ($RUN/console.txt) -----" >&2
	cat "$RUN/console.txt" >&2
	echo "----- end of guest console -----" >&2
}
fail() {
	dump_console
	die "$* (run dir kept: $RUN)"
}

if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then
	if grep -q '^=== GUEST-DONE' "$RUN/console.txt"; then
		fail "qemu did not exit within ${TIMEOUT}s after the guest finished (poweroff hung)"
	elif grep -q '^=== GUEST kernel' "$RUN/console.txt"; then
		fail "guest timeout: /init started but did not finish within ${TIMEOUT}s (hog or agent hung?)"
	else
		fail "boot timeout: the guest printed nothing from /init within ${TIMEOUT}s (kernel did not boot?)"
	fi
elif [ "$QRC" != 0 ]; then
	fail "qemu exited with status $QRC"
fi
grep -q '^=== GUEST-DONE' "$RUN/console.txt" \
	|| fail "missing marker '=== GUEST-DONE': the guest stopped before the end of /init (kernel panic or init died?)"
for m in OUT-BEGIN OUT-END OUT2-BEGIN OUT2-END; do
	grep -q "^=== $m\$" "$RUN/console.txt" || fail "missing marker '=== $m' in the guest console"
done
sed -n '/^=== OUT-BEGIN$/,/^=== OUT-END$/p' "$RUN/console.txt" | sed '1d;$d' >"$RUN/out.jsonl"
sed -n '/^=== OUT2-BEGIN$/,/^=== OUT2-END$/p' "$RUN/console.txt" | sed '1d;$d' >"$RUN/out-notify.jsonl"

grep '^=== GUEST ' "$RUN/console.txt" | sed 's/^=== /vm-test: /' >&2 || true
log "guest ran ${BOOT_SECS}s"

set +e
python3 "$HERE/check.py" --out "$RUN/out.jsonl" --notify-out "$RUN/out-notify.jsonl" --console "$RUN/console.txt" \
	--pod-uid "$POD_UID" --container-id "$CONTAINER_ID" --limit-bytes "$LIMIT_BYTES" \
	--group-pod-uid "$GROUP_POD_UID" --shm-pod-uid "$SHM_POD_UID"
CRC=$?
set -e
if [ "$CRC" != 0 ]; then
	dump_console
	log "run dir kept: $RUN (console.txt, out.jsonl, initramfs.cpio)"
	log "total $((SECONDS - START))s"
	exit 1
fi
if [ -n "${GPUSCOPE_VM_KEEP:-}" ]; then
	log "run dir kept: $RUN"
else
	rm -rf "$RUN"
fi
log "total $((SECONDS - START))s"
