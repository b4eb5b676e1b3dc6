#!/usr/bin/env bash
# Stop the one-node SLURM that slurm/setup_local_slurm.sh started: cancel its jobs, then
# stop slurmd, slurmctld and munged by their pid files. Leaves packages and
# /etc/slurm/slurm.conf in place, so setup_local_slurm.sh restarts it in seconds.
set -uo pipefail

RUN_DIR=/run/slurm
say() { echo "[stop_local_slurm] $*"; }

if command -v scancel >/dev/null && [ -s "$RUN_DIR/slurmctld.pid" ]; then
    scancel --user="$(id -un)" 2>/dev/null || true  # no job step outlives its daemons
fi

# Stop a daemon by its pid file: TERM, wait up to 10 s, then KILL.
stop() {
    local name=$1 pidfile=$2 pid
    if [ ! -s "$pidfile" ] || ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        say "$name: not running"
        rm -f "$pidfile"
        return 0
    fi
    pid="$(cat "$pidfile")"
    kill "$pid"
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name ($pid) ignored TERM; sending KILL"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    say "$name: stopped ($pid)"
}

stop slurmd "$RUN_DIR/slurmd.pid"
stop slurmctld "$RUN_DIR/slurmctld.pid"
stop munged /run/munge/munged.pid

# slurmstepd processes belong to jobs; after scancel and slurmd's exit none should remain.
if pgrep -x slurmstepd >/dev/null; then
    say "WARNING: slurmstepd still running (pids: $(pgrep -x slurmstepd | tr '\n' ' '))"
    exit 1
fi
