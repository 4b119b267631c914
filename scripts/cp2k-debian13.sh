#!/usr/bin/env bash
# cp2k-debian13.sh [--install | CP2K ARGUMENTS]: Debian 13's packaged CP2K (2025.1) on this Debian 12 machine.
#
# The tests run every supported CP2K release on a real program (docs/hpc.md, "CP2K versions"): 2023.1 is Debian 12's
# own package, 2026.2 is ../shared/cp2k/cp2k-2026.2, and a 2025 release is Debian 13's `cp2k` package, which this
# script installs into a Debian 13 root made with debootstrap (Debian's packages only; about three minutes the
# first time) and runs there like `cp2k.psmp`: in the caller's directory (bind-mounted at the same path in a
# private mount namespace, with the directories its symlinks point to, such as AiiDA's parent_calc/), one process,
# OMP_NUM_THREADS threads (default 1), exit status and signals CP2K's own.
#
#   bash scripts/cp2k-debian13.sh --install        # make the root (once); CI does this before the tests
#   scripts/cp2k-debian13.sh -i x.inp -o x.out     # run CP2K 2025.1 (an AiiDA code can point at this file)
#
# Needs root (debootstrap, chroot, unshare). CP2K_DEBIAN13_ROOT chooses the root (default /opt/cp2k-debian13).
set -euo pipefail
root=${CP2K_DEBIAN13_ROOT:-/opt/cp2k-debian13}
binary=$root/usr/bin/cp2k.psmp

make_root() {
    command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; } >/dev/null
    rm -rf "$root.part"
    debootstrap --variant=minbase trixie "$root.part" >"$root.log" 2>&1 || {
        echo "cp2k-debian13: debootstrap of Debian 13 failed, see $root.log" >&2; exit 1; }
    chroot "$root.part" apt-get -qq update >>"$root.log" 2>&1
    DEBIAN_FRONTEND=noninteractive chroot "$root.part" apt-get install -y -qq --no-install-recommends \
        cp2k libopenblas0-pthread >>"$root.log" 2>&1 || {
        echo "cp2k-debian13: installing Debian 13's cp2k failed, see $root.log" >&2; exit 1; }
    chroot "$root.part" apt-get clean >>"$root.log" 2>&1
    mv "$root.part" "$root"
}

if [ ! -x "$binary" ]; then
    exec 9>"$root.lock"
    flock 9
    [ -x "$binary" ] || make_root
    exec 9>&-
fi
if [ "${1:-}" = --install ]; then
    echo "cp2k-debian13: $("$0" --version | grep 'CP2K version' | sed 's/^ *//') in $root"
    exit 0
fi

threads=${OMP_NUM_THREADS:-1}
exec unshare --mount --propagation private /bin/bash -c '
    set -e
    root=$1 cwd=$2 threads=$3; shift 3
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount --rbind /sys "$root/sys"
    mkdir -p "$root$cwd"
    mount --bind "$cwd" "$root$cwd"
    # a continued job reads its parent through a symlink (AiiDA'"'"'s parent_calc/ on the same computer)
    for link in "$cwd"/*; do
        [ -L "$link" ] && [ -d "$link" ] || continue
        target=$(readlink -f "$link")
        mkdir -p "$root$target" && mount --bind "$target" "$root$target"
    done
    exec chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root OMP_NUM_THREADS="$threads" \
        OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        /bin/sh -c "cd \"\$0\" && exec \"\$@\"" "$cwd" /usr/bin/cp2k.psmp "$@"
' cp2k-debian13 "$root" "$PWD" "$threads" "$@"
