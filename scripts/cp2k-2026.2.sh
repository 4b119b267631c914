#!/usr/bin/env bash
# cp2k-2026.2.sh [CP2K ARGUMENTS]: ../shared/cp2k/cp2k-2026.2 (CP2K 2026.2 in its Debian 13 root), with the
# directories that the job directory's symlinks point to visible inside that root.
#
# The shared runner bind-mounts only the caller's directory into its root, so a continued job, which AiiDA gives
# its parent's files through the symlink parent_calc/, would not find them (CP2K aborts on the missing restart
# file). This wrapper opens a private mount namespace, bind-mounts each symlinked directory at its own path inside
# the root, and runs the shared runner there (its own namespace inherits these mounts). Needs root.
# Environment: NANOHETERO_SHARED (default ../shared beside the repository), CP2K_2026_ROOT (default
# /opt/cp2k-2026.2).
set -euo pipefail
repo=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
runner=${NANOHETERO_SHARED:-$repo/../shared}/cp2k/cp2k-2026.2
root=${CP2K_2026_ROOT:-/opt/cp2k-2026.2}
[ -x "$runner" ] || { echo "cp2k-2026.2.sh: $runner not found (set NANOHETERO_SHARED)" >&2; exit 127; }
[ -d "$root/usr" ] || "$runner" --version >/dev/null  # the first call makes the root
exec unshare --mount --propagation private /bin/bash -c '
    set -e
    root=$1 runner=$2; shift 2
    for link in "$PWD"/*; do
        [ -L "$link" ] && [ -d "$link" ] || continue
        target=$(readlink -f "$link")
        mkdir -p "$root$target" && mount --bind "$target" "$root$target"
    done
    exec "$runner" "$@"
' cp2k-2026.2.sh "$root" "$runner" "$@"
