#!/usr/bin/env bash
# Prepare this machine for anklumec's end-to-end tests (ANKLUMEC_E2E=1).
#
# Idempotent; meant for a Debian 12 (bookworm) machine, run as root, where
# systemd is NOT PID 1 (so incusd is started by hand, detached with setsid).
#
#   1. installs incus (bookworm-backports), busybox-static and shellcheck
#   2. starts incusd if `incus info` does not answer
#   3. preseeds a `default` dir storage pool and the default profile's root
#      disk (no network: `incus admin init --minimal` fails on these hosts)
#   4. builds and imports a tiny static-busybox container image under the
#      alias `anklumec-test` (default project)
#
# Every incus command gets </dev/null: incus reads stdin as YAML when it is
# not a terminal, which would swallow input piped to this script.
set -euo pipefail

IMAGE_ALIAS=anklumec-test
POOL=default
INCUSD=/usr/libexec/incus/incusd
INCUSD_LOG=/var/log/incusd-anklumec.log
BACKPORTS_LIST=/etc/apt/sources.list.d/bookworm-backports.list
# Fixed so that the image metadata is reproducible.
CREATION_DATE=1700000000
# Bump when the image content below changes: an older image is replaced.
IMAGE_VERSION=2

done_steps=()

log() { printf 'setup-incus: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"

wait_apt_lock() {
    local waited=0
    while pgrep -x apt-get >/dev/null || pgrep -x apt >/dev/null \
        || pgrep -x dpkg >/dev/null || pgrep -x unattended-upgr >/dev/null; do
        if [ "$waited" -eq 0 ]; then log "waiting for a running apt/dpkg to finish"; fi
        waited=1
        sleep 5
    done
}

apt_install() {
    wait_apt_lock
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" </dev/null >&2
}

# --- 1. packages --------------------------------------------------------------
apt_updated=0
apt_update() {
    if [ "$apt_updated" -eq 0 ]; then
        wait_apt_lock
        apt-get update -q </dev/null >&2
        apt_updated=1
    fi
}

if ! command -v incus >/dev/null 2>&1 || [ ! -x "$INCUSD" ]; then
    log "installing incus from bookworm-backports"
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo 'deb http://deb.debian.org/debian bookworm-backports main' >"$BACKPORTS_LIST"
    fi
    apt_update
    apt_install -t bookworm-backports incus
    done_steps+=("installed incus")
fi

missing_pkgs=()
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' \
    || missing_pkgs+=(busybox-static)
command -v shellcheck >/dev/null 2>&1 || missing_pkgs+=(shellcheck)
if [ "${#missing_pkgs[@]}" -gt 0 ]; then
    log "installing ${missing_pkgs[*]}"
    apt_update
    apt_install "${missing_pkgs[@]}"
    done_steps+=("installed ${missing_pkgs[*]}")
fi

# --- 2. daemon ----------------------------------------------------------------
if ! incus info </dev/null >/dev/null 2>&1; then
    log "starting incusd (log: $INCUSD_LOG)"
    # New session, no tie to this shell: the daemon outlives the script.
    setsid "$INCUSD" --group root >"$INCUSD_LOG" 2>&1 </dev/null &
    if ! incus admin waitready --timeout 60 </dev/null; then
        tail -n 30 "$INCUSD_LOG" >&2 || true
        die "incusd did not become ready"
    fi
    done_steps+=("started incusd")
fi

# --- 3. storage pool + default profile root disk ------------------------------
preseed=""
if ! incus storage show "$POOL" </dev/null >/dev/null 2>&1; then
    preseed+="storage_pools:
- name: $POOL
  driver: dir
"
fi
if ! incus profile device get default root pool </dev/null >/dev/null 2>&1; then
    preseed+="profiles:
- name: default
  devices:
    root:
      path: /
      pool: $POOL
      type: disk
"
fi
if [ -n "$preseed" ]; then
    log "preseeding incus"
    printf '%s' "$preseed" | incus admin init --preseed
    done_steps+=("preseeded")
fi

# --- 4. test image ------------------------------------------------------------
image_version=$(incus image get-property "$IMAGE_ALIAS" anklumec.version </dev/null 2>/dev/null || true)
if [ "$image_version" != "$IMAGE_VERSION" ]; then
    if incus image info "$IMAGE_ALIAS" </dev/null >/dev/null 2>&1; then
        log "replacing outdated image $IMAGE_ALIAS (version '${image_version}')"
        incus image delete "$IMAGE_ALIAS" </dev/null
    fi
    log "building image $IMAGE_ALIAS"
    busybox=/bin/busybox
    [ -x "$busybox" ] || die "$busybox missing (package busybox-static)"

    workdir=$(mktemp -d /tmp/anklumec-image.XXXXXX)
    trap 'rm -rf "$workdir"' EXIT
    rootfs=$workdir/rootfs
    mkdir -p "$rootfs"
    (
        cd "$rootfs"
        mkdir -p bin sbin usr/bin usr/sbin etc/init.d proc sys dev run tmp \
            root var/log etc/udhcpc
        chmod 1777 tmp
        chmod 700 root
    )
    cp "$busybox" "$rootfs/bin/busybox"
    chmod 755 "$rootfs/bin/busybox"
    # One symlink per applet, in the directory busybox expects it.
    while IFS= read -r applet; do
        applet=${applet#/}
        [ -n "$applet" ] || continue
        [ -e "$rootfs/$applet" ] || [ -L "$rootfs/$applet" ] \
            || ln -s /bin/busybox "$rootfs/$applet"
    done < <("$rootfs/bin/busybox" --list-full)
    rm -f "$rootfs/sbin/init"
    ln -s ../bin/busybox "$rootfs/sbin/init"
    for applet in sh sleep mount true ip hostname udhcpc cat ls; do
        [ -e "$rootfs/bin/$applet" ] || [ -e "$rootfs/sbin/$applet" ] \
            || [ -e "$rootfs/usr/bin/$applet" ] || [ -e "$rootfs/usr/sbin/$applet" ] \
            || ln -s /bin/busybox "$rootfs/bin/$applet"
    done

    cat >"$rootfs/etc/inittab" <<'INITTAB'
::sysinit:/etc/init.d/rcS
::respawn:/bin/sleep 2147483647
::ctrlaltdel:/bin/true
::shutdown:/bin/true
INITTAB
    cat >"$rootfs/etc/init.d/rcS" <<'RCS'
#!/bin/sh
# Incus normally mounts these already; mount them only if missing.
[ -e /proc/self ] || mount -t proc proc /proc
[ -d /sys/class ] || mount -t sysfs sysfs /sys
[ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev 2>/dev/null || mount -t tmpfs -o mode=755 tmpfs /dev
ip link set lo up 2>/dev/null
# DHCP on every ethernet interface, in the background so boot never blocks.
for dev in /sys/class/net/*; do
    dev=${dev##*/}
    case "$dev" in
        lo) ;;
        *) ip link set "$dev" up 2>/dev/null
           udhcpc -i "$dev" -b -t 5 -T 2 -s /etc/udhcpc/default.script >/dev/null 2>&1 & ;;
    esac
done
exit 0
RCS
    cat >"$rootfs/etc/udhcpc/default.script" <<'DHCP'
#!/bin/sh
# Minimal udhcpc hook: apply the lease with `ip`.
case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface" 2>/dev/null
        ip link set "$interface" up
        ;;
    bound|renew)
        ip -4 addr flush dev "$interface" 2>/dev/null
        ip addr add "$ip/${mask:-24}" dev "$interface"
        if [ -n "$router" ]; then
            ip route del default 2>/dev/null
            for r in $router; do ip route add default via "$r" dev "$interface" && break; done
        fi
        : >/etc/resolv.conf
        for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
        ;;
esac
exit 0
DHCP
    chmod 755 "$rootfs/etc/init.d/rcS" "$rootfs/etc/udhcpc/default.script"
    echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
    echo 'root:x:0:' >"$rootfs/etc/group"
    : >"$rootfs/etc/resolv.conf"

    cat >"$workdir/metadata.yaml" <<META
architecture: x86_64
creation_date: $CREATION_DATE
properties:
  os: busybox
  release: "1"
  description: anklumec test image
  anklumec.version: "$IMAGE_VERSION"
META
    tar --numeric-owner --owner=0 --group=0 -C "$workdir" -czf "$workdir/metadata.tar.gz" metadata.yaml
    tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -czf "$workdir/rootfs.tar.gz" .
    incus image import "$workdir/metadata.tar.gz" "$workdir/rootfs.tar.gz" \
        --alias "$IMAGE_ALIAS" </dev/null >&2
    done_steps+=("imported image $IMAGE_ALIAS")
fi

# --- 5. summary -----------------------------------------------------------------
if [ "${#done_steps[@]}" -eq 0 ]; then
    echo "setup-incus: already ready"
else
    summary=$(printf '%s, ' "${done_steps[@]}")
    echo "setup-incus: ${summary%, }"
fi
