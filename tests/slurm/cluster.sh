#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for tests/test_slurm.py (issue 26).
#
#   eval "$(tests/slurm/cluster.sh up)"   # as root: install what is missing, start it, print `export SLURM_CONF=...`
#   tests/slurm/cluster.sh status         # sinfo + squeue
#   tests/slurm/cluster.sh down           # cancel its jobs, stop every daemon it started
#
# `up` installs the Debian packages when missing (slurm-wlm, slurmctld, slurmd, munge; slurmdbd and mariadb-server
# too: submitit follows jobs with `sacct`, which needs the accounting daemon, and without it a cancelled job would
# be waited for forever), writes a minimal slurm.conf for this host (its CPUs and memory from `slurmd -C`, no GPUs,
# one partition `ci`) and a slurmdbd.conf under $PREFNOISE_SLURM_DIR (default /tmp/prefnoise-slurm), starts munge,
# a private MariaDB (loopback only, its own data dir), slurmdbd, slurmctld and slurmd, and waits until `sinfo` shows
# the node idle. Nothing under /etc/slurm is written: every command finds the cluster through SLURM_CONF. Ports
# $PREFNOISE_SLURM_PORT .. +3 (default 16817..16820), all on 127.0.0.1. Progress goes to stderr, daemon logs to
# $PREFNOISE_SLURM_DIR/log; the only line on stdout is the export. The database password is generated, kept in
# the mode-600 slurmdbd.conf, and never printed.
set -euo pipefail

STATE=${PREFNOISE_SLURM_DIR:-/tmp/prefnoise-slurm}
case $STATE in /*/*) ;; *) echo "cluster.sh: PREFNOISE_SLURM_DIR must be a folder of its own ($STATE)" >&2; exit 2 ;; esac
PORT=${PREFNOISE_SLURM_PORT:-16817}
PARTITION=ci
PACKAGES=(slurm-wlm slurmctld slurmd slurmdbd munge mariadb-server)
export SLURM_CONF=$STATE/etc/slurm.conf

say() { echo "[slurm] $*" >&2; }
die() { say "error: $*"; for f in "$STATE"/log/*.log; do [ -s "$f" ] && { say "--- $f"; tail -n 15 "$f" >&2; }; done; exit 1; }

wait_for() {  # wait_for SECONDS WHAT COMMAND...: poll until COMMAND succeeds
    local limit=$1 what=$2 t0=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        (( SECONDS - t0 < limit )) || die "$what not ready after ${limit}s"
        sleep 0.5
    done
}

install_missing() {
    local missing=0 bin
    for bin in slurmctld slurmd slurmdbd sbatch sacct munged mariadbd mariadb-install-db; do
        command -v "$bin" >/dev/null 2>&1 || missing=1
    done
    (( missing )) || return 0
    say "installing ${PACKAGES[*]}"
    local rc_guard=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then  # no package may start its daemon with the default config
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && rc_guard=1
    fi
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >&2
    (( rc_guard )) && rm -f /usr/sbin/policy-rc.d
    return 0
}

pid_of() { [ -s "$STATE/run/$1.pid" ] && cat "$STATE/run/$1.pid"; }

stop_daemons() {  # stop_daemons NAME:PROCESS...: SIGTERM the pid in each pid file (if it is still that daemon, not a
    local spec name comm pid pids=() t0=$SECONDS  # process that reused its pid), SIGKILL what is left after 10 s
    for spec in "$@"; do
        name=${spec%%:*} comm=${spec#*:}
        pid=$(pid_of "$name") || continue
        if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]; then
            kill "$pid" 2>/dev/null && pids+=("$pid")
        fi
        rm -f "$STATE/run/$name.pid"
    done
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && (( SECONDS - t0 < 10 )); do sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
    done
}

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        say "munge: already running"
        return 0
    fi
    [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
    mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/prefnoise-munged.pid
    cp /run/munge/prefnoise-munged.pid "$STATE/run/munged.pid"  # ours: `down` stops it
    wait_for 20 munge sh -c 'munge -n </dev/null | unmunge'
}

start_mariadb() {
    local db=$STATE/db
    mariadb-install-db --no-defaults --user=root --datadir="$db" --auth-root-authentication-method=socket \
        --skip-test-db >"$STATE/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed"
    mariadbd --no-defaults --user=root --datadir="$db" --socket="$STATE/run/mysqld.sock" \
        --pid-file="$STATE/run/mariadb.pid" --bind-address=127.0.0.1 --port=$((PORT + 3)) --skip-name-resolve \
        --innodb-buffer-pool-size=32M --innodb-log-file-size=16M --log-error="$STATE/log/mariadb.log" \
        </dev/null >>"$STATE/log/mariadb.log" 2>&1 &
    wait_for 60 MariaDB mariadb --no-defaults -S "$STATE/run/mysqld.sock" -u root -e 'SELECT 1'
    local pass
    pass=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
    mariadb --no-defaults -S "$STATE/run/mysqld.sock" -u root <<SQL
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
    (umask 077 && cat >"$STATE/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$((PORT + 2))
SlurmUser=root
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$((PORT + 3))
StorageUser=slurm
StoragePass=$pass
StorageLoc=slurm_acct_db
EOF
)
}

write_slurm_conf() {
    local host node
    host=$(hostname -s)
    # this host as slurmd sees it (CPUs, sockets, cores, threads, memory), less its uptime
    node=$(slurmd -C | head -n 1 | sed -e 's/ *UpTime=.*//' -e "s/^NodeName=[^ ]*/NodeName=$host NodeAddr=127.0.0.1/")
    cat >"$SLURM_CONF" <<EOF
# written by tests/slurm/cluster.sh: one node, this host, no GPUs
ClusterName=prefnoise
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire: also how long a requeued job waits before it may start again (120 s by default; 10 s here)
AuthInfo=cred_expire=10
CredType=cred/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
# pending jobs are looked at every 2 s (not 60 s / 30 s): a requeued job starts as soon as it may
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# a node that stops answering is DOWN after 5 s of silence, about 20 s here with 5 s per message (its jobs
# requeued: JobRequeue=1), and back in service when its slurmd registers again
SlurmdTimeout=5
MessageTimeout=5
ReturnToService=2
JobRequeue=1
# SIGTERM to SIGKILL of a cancelled or requeued job (30 s by default; submitit's jobs ignore SIGTERM)
KillWait=2
MinJobAge=600
InactiveLimit=0
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$((PORT + 2))
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
$node State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=120 State=UP
EOF
}

node_idle() { sinfo -h -p "$PARTITION" -o %T | grep -qx idle; }

up() {
    [ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts daemons)"
    local t0=$SECONDS
    install_missing
    down_quiet
    rm -rf "$STATE"  # a new cluster each time: no jobs of an earlier one come back, job ids and accounting start anew
    mkdir -p "$STATE"/{etc,log,run,spool/ctld,spool/d}
    start_munge
    start_mariadb
    write_slurm_conf
    slurmdbd || die "slurmdbd did not start"
    wait_for 60 slurmdbd sacctmgr -n list cluster
    slurmctld || die "slurmctld did not start"
    wait_for 60 slurmctld scontrol ping
    slurmd || die "slurmd did not start"
    wait_for 60 "the node (idle in sinfo)" node_idle
    say "up in $((SECONDS - t0)) s: $(sinfo -h -o '%P %D %c CPUs %T' | head -n 1)"
    echo "export SLURM_CONF=$SLURM_CONF"
}

down_quiet() {
    if [ -s "$STATE/run/slurmctld.pid" ] && scontrol ping >/dev/null 2>&1; then
        scancel --quiet --partition="$PARTITION" 2>/dev/null || true
    fi
    stop_daemons slurmd:slurmd slurmctld:slurmctld slurmdbd:slurmdbd mariadb:mariadbd munged:munged
}

case "${1:-}" in
    up) up ;;
    down) down_quiet; say "down" ;;
    status) sinfo; squeue ;;
    env) echo "export SLURM_CONF=$SLURM_CONF" ;;
    *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
