#!/usr/bin/env bash
# A one-node SLURM on this machine, for `make test-cluster` (CI) and for trying the
# launcher configs before a real cluster. Idempotent: run it again and it only starts
# what is not running. Needs root (apt-get, /etc). Undo with slurm/stop_local_slurm.sh.
#
# Container-friendly on purpose: no systemd (daemons are started directly), no cgroups
# (proctrack/linuxproc, task/none), no accounting database. Not a production setup.
#
#   bash slurm/setup_local_slurm.sh            # install, configure, start, wait for idle
#   SLURM_WAIT_S=120 bash slurm/setup_local_slurm.sh
set -euo pipefail

WAIT_S="${SLURM_WAIT_S:-60}"            # how long to wait for the node to turn idle
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
STATE_DIR=/var/lib/slurm                # slurmctld state + slurmd spool
LOG_DIR=/var/log/slurm
RUN_DIR=/run/slurm                      # pid files

say() { echo "[setup_local_slurm] $*"; }
die() { echo "[setup_local_slurm] ERROR: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and writes $CONF)."

# --- 1. packages -------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sinfo >/dev/null \
    || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || die "slurm is not installed and there is no apt-get; install slurm-wlm and munge yourself."
    say "installing slurm-wlm and munge (apt-get)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed (no access to the Debian mirror?)."
    # --no-install-recommends: skips the mail server and docs that slurm-wlm recommends.
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null \
        || die "apt-get install slurm-wlm munge failed."
fi
say "slurm $(slurmd -V | awk '{print $2}'), munge $(munged --version 2>&1 | awk '{print $1}' | head -1)"

# --- 2. munge: a key, then the daemon (slurm authenticates every RPC through it) ---------
id munge >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin munge
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    say "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
    say "starting munged"
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged || die "munged did not start; see /var/log/munge/munged.log"
    for _ in $(seq 20); do munge_ok && break; sleep 0.5; done
    munge_ok || die "munge does not answer (munge -n | unmunge failed); see /var/log/munge/munged.log"
fi

# --- 3. slurm.conf from this machine's real hardware -------------------------------------
HOST="$(hostname -s)"
# slurmd -C prints "NodeName=<host> CPUs=.. Boards=.. SocketsPerBoard=.. CoresPerSocket=..
# ThreadsPerCore=.. RealMemory=..": exactly what slurmctld checks the node against.
NODE_LINE="$(slurmd -C | head -1)"
case "$NODE_LINE" in NodeName=*) ;; *) die "slurmd -C printed no node line: '$NODE_LINE'";; esac
# Leave ~10% of memory to the OS so slurmd never reports less than is configured.
REAL_MEM="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$NODE_LINE")"
NODE_LINE="$(sed "s/RealMemory=[0-9]*/RealMemory=$(( REAL_MEM * 9 / 10 ))/" <<<"$NODE_LINE")"

install -d -m 0755 "$CONF_DIR" "$LOG_DIR" "$RUN_DIR" "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd"
NEW_CONF="$(mktemp)"
cat >"$NEW_CONF" <<EOF
# Written by slurm/setup_local_slurm.sh: a one-node SLURM for tests. Not for production.
ClusterName=embedlab-local
SlurmctldHost=${HOST}(127.0.0.1)
# root: no slurm user or file ownership to manage inside a container.
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
# No cgroups in a container: track job processes by parent pid, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
# Cores are the consumable: a 2-task job (one task per DDP rank) takes 2 cores, so on a
# 2-core box the jobs of a sweep run one after another instead of oversubscribing.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# A node that was down (e.g. after a restart of this script) comes back by itself.
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=10
MinJobAge=300
${NODE_LINE} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
CONF_CHANGED=0
if ! cmp -s "$NEW_CONF" "$CONF" 2>/dev/null; then
    say "writing $CONF ($NODE_LINE)"
    install -m 0644 "$NEW_CONF" "$CONF"
    CONF_CHANGED=1
fi
rm -f "$NEW_CONF"

# --- 4. daemons ----------------------------------------------------------------------------
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if [ "$CONF_CHANGED" = 1 ]; then  # a changed node line needs fresh daemons
    for d in slurmd slurmctld; do
        if running "$RUN_DIR/$d.pid"; then
            say "restarting $d for the new slurm.conf"
            kill "$(cat "$RUN_DIR/$d.pid")"
            for _ in $(seq 20); do running "$RUN_DIR/$d.pid" || break; sleep 0.5; done
        fi
    done
fi
if ! running "$RUN_DIR/slurmctld.pid"; then
    say "starting slurmctld (log: $LOG_DIR/slurmctld.log)"
    # -c: start from a clean state, so no stale job or node record survives a previous run.
    slurmctld -c || die "slurmctld did not start; see $LOG_DIR/slurmctld.log"
fi
if ! running "$RUN_DIR/slurmd.pid"; then
    say "starting slurmd (log: $LOG_DIR/slurmd.log)"
    slurmd || die "slurmd did not start; see $LOG_DIR/slurmd.log"
fi

# --- 5. wait until the node accepts jobs ---------------------------------------------------
say "waiting up to ${WAIT_S}s for $HOST to be idle..."
state=""
for _ in $(seq "$WAIT_S"); do
    state="$(sinfo -h -n "$HOST" -o %T 2>/dev/null | head -1 || true)"
    case "$state" in
        idle|mixed|allocated) break ;;
        down*|drain*) scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 1
done
case "$state" in
    idle|mixed|allocated) ;;
    *)
        tail -n 20 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 || true
        die "node $HOST is '${state:-not listed}' after ${WAIT_S}s (logs above; reason: $(sinfo -h -R 2>/dev/null))."
        ;;
esac
sinfo
say "ready: node $HOST is $state"
