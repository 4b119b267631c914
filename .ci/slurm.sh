#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for the tests marked `slurm` (CI, or a developer's box).
#
#   bash .ci/slurm.sh install   # apt-get install slurm-wlm munge (quiet; the log is shown only on failure)
#   bash .ci/slurm.sh start     # munged, slurmctld, slurmd; waits until the node is idle
#   bash .ci/slurm.sh status
#   bash .ci/slurm.sh stop      # stops exactly the daemons `start` started, by the PIDs it recorded
#
# No systemd and no cgroups: ProctrackType=proctrack/linuxproc, TaskPlugin=task/none. No accounting database
# either (AccountingStorageType=accounting_storage/none): `sacct` then fails and AiiDA logs a warning per job, but
# it still recognises a job killed for its walltime from the line SLURM writes to the job's stderr
# ("CANCELLED AT ... DUE TO TIME LIMIT") and sets ERROR_SCHEDULER_OUT_OF_WALLTIME (120). The time limit is checked
# every 30 s by slurmctld, so a job is killed 0-30 s after its limit (limits are whole minutes).
# Must run as root. State, logs and PID files go to $NANOHETERO_SLURM_DIR (default /tmp/nanohetero-slurm).
set -euo pipefail

STATE=${NANOHETERO_SLURM_DIR:-/tmp/nanohetero-slurm}
CONF=/etc/slurm/slurm.conf
MARKER='# written by aiida-nanohetero .ci/slurm.sh'

die() { echo "slurm.sh: $*" >&2; exit 1; }

install() {
    local missing=()
    for package in slurm-wlm munge; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "==> apt-get install ${missing[*]}"
    local log
    log=$(mktemp)
    if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${missing[@]}"; } >"$log" 2>&1; then
        cat "$log"
        die "apt-get install ${missing[*]} failed (log above)"
    fi
    rm -f "$log"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq $((seconds * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    die "$what did not come up within ${seconds}s (logs in $STATE)"
}

write_conf() {
    if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
        die "$CONF exists and was not written by this script: refusing to overwrite it"
    fi
    local node host
    node=$(slurmd -C | head -1 | sed 's/ UpTime.*//')
    host=$(hostname -s)
    mkdir -p "$STATE/spool/ctld" "$STATE/spool/d" "$STATE/log"
    chmod 755 "$STATE" "$STATE/spool"
    chown -R slurm:slurm "$STATE/spool/ctld" "$STATE/log"
    cat >"$CONF" <<EOF
$MARKER; remove it with .ci/slurm.sh stop
ClusterName=nanohetero-ci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# no systemd, no cgroups
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# start jobs at once, refuse impossible requests instead of leaving them pending, kill quickly
SchedulerParameters=batch_sched_delay=0
EnforcePartLimits=ALL
KillWait=5
ReturnToService=2
$node
PartitionName=debug Nodes=$(echo "$node" | sed 's/NodeName=\([^ ]*\).*/\1/') Default=YES MaxTime=60 State=UP
EOF
}

start() {
    [ "$(id -u)" = 0 ] || die "must run as root"
    command -v slurmctld >/dev/null || die "slurmctld not installed: run 'bash .ci/slurm.sh install'"
    mkdir -p "$STATE"
    write_conf
    mkdir -p /run/munge && chown munge:munge /run/munge
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        runuser -u munge -- /usr/sbin/munged  # as root it refuses to start; it logs to /var/log/munge
        wait_for 10 munged sh -c 'munge -n | unmunge'
        cp /run/munge/munged.pid "$STATE/munged.pid"
        touch "$STATE/munged.ours"
    fi
    alive "$STATE/slurmctld.pid" || slurmctld
    alive "$STATE/slurmd.pid" || slurmd
    wait_for 20 slurmctld alive "$STATE/slurmctld.pid"
    wait_for 20 slurmd alive "$STATE/slurmd.pid"
    wait_for 30 "the SLURM node" sh -c 'sinfo -h -o %T | grep -qx idle'
    echo "SLURM up: $(sinfo -h -o '%P %D node(s) %c CPUs %m MB %T')  (conf $CONF, logs $STATE/log)"
}

status() {
    local ok=0
    for daemon in munged slurmctld slurmd; do
        if alive "$STATE/$daemon.pid"; then
            echo "$daemon: running (pid $(cat "$STATE/$daemon.pid"))"
        else
            echo "$daemon: not running"
            ok=1
        fi
    done
    [ $ok = 0 ] && sinfo
    return $ok
}

stop_pid() {  # stop_pid NAME: SIGTERM the PID recorded for NAME, wait up to 15 s, then SIGKILL
    local file="$STATE/$1.pid" pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 75); do
            kill -0 "$pid" 2>/dev/null || break
            # a stopped daemon can linger as a zombie of init for a moment: that counts as stopped
            [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ] && break
            sleep 0.2
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

stop() {
    stop_pid slurmd
    stop_pid slurmctld
    if [ -f "$STATE/munged.ours" ]; then
        stop_pid munged
        rm -f "$STATE/munged.ours"
    fi
    if [ -f "$CONF" ] && grep -qF "$MARKER" "$CONF"; then
        rm -f "$CONF"
    fi
    echo "SLURM stopped"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    status) status ;;
    stop) stop ;;
    *) die "usage: bash .ci/slurm.sh install|start|status|stop" ;;
esac
