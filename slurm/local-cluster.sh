#!/usr/bin/env bash
# A one-node SLURM cluster on localhost, for tests and for trying hplandscape's SLURM executor.
#
#   slurm/local-cluster.sh install   Debian packages slurmctld, slurmd, slurm-client, munge
#   slurm/local-cluster.sh start     write /etc/slurm/slurm.conf, start munged, slurmctld, slurmd
#   slurm/local-cluster.sh stop      stop the three daemons (by the pids in their pid files)
#   slurm/local-cluster.sh status    daemons and `sinfo`
#
# Every command is idempotent and must run as root. No slurmdbd: `sacct` does not work on this
# cluster, which is why hplandscape reads job states from `squeue` and the study directory.
# For a real cluster's settings see slurm/README.md; nothing here is meant for production.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
SLURMCTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid

die() { echo "local-cluster.sh: $*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts system daemons)"
}

alive() {  # alive PIDFILE: the process named in PIDFILE runs
    local pid  # a daemon removes its pid file as it exits: read it once, quietly
    pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

install() {
    need_root
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v sinfo >/dev/null && command -v munged >/dev/null; then
        echo "slurm and munge already installed"
        return
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
    echo "installed: $(slurmctld -V)"
}

write_conf() {
    mkdir -p /etc/slurm
    local mem
    # RealMemory must not exceed what slurmd detects, or the node is drained: 90 % of the machine's.
    # It bounds what one job may ask (memory is no consumable resource with CR_Core), and
    # hplandscape's default launcher.mem_gb of 8 asks 8192 MB: a smaller node makes sbatch refuse
    # every job of a default config, which `hplandscape sweep --executor slurm` reads back from
    # sinfo beforehand, naming the launcher key to lower (on a machine under 9.1 GB).
    mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    cat > "$CONF.tmp" <<CONF
# Written by hplandscape slurm/local-cluster.sh: a one-node test cluster on localhost.
ClusterName=local
SlurmctldHost=localhost
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmctldPidFile=$SLURMCTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmUser=root
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=localhost CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
    mv "$CONF.tmp" "$CONF"
}

start() {
    need_root
    command -v slurmctld >/dev/null || die "slurm is not installed; run: $0 install"
    mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
    chown munge:munge /run/munge
    write_conf
    if ! alive "$MUNGE_PID"; then
        [ -s /etc/munge/munge.key ] || { /usr/sbin/mungekey -c -f 2>/dev/null || create-munge-key -f; }
        su -s /bin/sh munge -c /usr/sbin/munged
    fi
    alive "$SLURMCTLD_PID" || /usr/sbin/slurmctld
    alive "$SLURMD_PID" || /usr/sbin/slurmd
    for _ in $(seq 60); do
        if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
            echo "cluster up: $(sinfo -h -o '%P %D %t %c CPUs')"
            return
        fi
        sleep 0.5
    done
    # A node left drained by an earlier run comes back here.
    scontrol update NodeName=localhost State=RESUME 2>/dev/null || true
    sleep 1
    sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)' \
        || die "the node did not become idle; see /var/log/slurm/slurmctld.log and slurmd.log"
    echo "cluster up: $(sinfo -h -o '%P %D %t %c CPUs')"
}

stop() {
    need_root
    local f
    for f in "$SLURMD_PID" "$SLURMCTLD_PID" "$MUNGE_PID"; do
        if alive "$f"; then
            kill "$(cat "$f" 2>/dev/null)" 2>/dev/null || true
            for _ in $(seq 40); do alive "$f" || break; sleep 0.25; done
        fi
        rm -f "$f"
    done
    echo "cluster stopped"
}

status() {
    local f ok=0
    for f in "$MUNGE_PID" "$SLURMCTLD_PID" "$SLURMD_PID"; do
        if alive "$f"; then echo "$(basename "$f" .pid): running (pid $(cat "$f"))"
        else echo "$(basename "$f" .pid): stopped"; ok=1; fi
    done
    command -v sinfo >/dev/null && sinfo 2>/dev/null || true
    return $ok
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 {install|start|stop|status}" >&2; exit 2 ;;
esac
