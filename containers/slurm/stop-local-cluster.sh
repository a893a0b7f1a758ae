#!/usr/bin/env bash
# Stop the one-node cluster started by start-local-cluster.sh: slurmd and slurmctld by the
# process ids in their pid files (munged is left running: other software may use it).
# With --purge, also remove the state, spool and logs.
set -euo pipefail

DIR=${INFANT_TISSUE_SLURM_DIR:-/var/spool/infant-tissue-slurm}

stop() {
    local pidfile=$1
    [ -s "$pidfile" ] || return 0
    local pid
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pidfile"
}

stop "$DIR/slurmd.pid"
stop "$DIR/slurmctld.pid"
if [ "${1:-}" = --purge ]; then
    rm -rf "$DIR"
fi
echo "local SLURM cluster stopped"
