#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine (munged + slurmctld + slurmd), for testing
# `infant-tissue batch --submit` for real. Idempotent: daemons already running are kept, so a
# test fixture can call it every time.
#
#   sudo containers/slurm/start-local-cluster.sh        # then: export SLURM_CONF=<printed path>
#
# Needs root and Debian's `slurm-wlm` and `munge` packages (apt-get install -y slurm-wlm munge).
# Made for containers and CI VMs: no cgroups (proctrack/linuxproc, task/none), no accounting
# daemon (so no sacct: poll squeue / scontrol), no systemd. The configuration lives in
# $INFANT_TISSUE_SLURM_DIR (default /var/spool/infant-tissue-slurm), never in /etc/slurm, so a
# real cluster's configuration on the same machine is left alone; clients find it through
# SLURM_CONF. The last line printed is `SLURM_CONF=<path>`.
#
# Environment: INFANT_TISSUE_SLURM_DIR (state, spool, logs), INFANT_TISSUE_SLURM_PARTITION
# (default "debug"), INFANT_TISSUE_SLURM_TIMEOUT (seconds to wait for the node, default 60).
# Stop it with containers/slurm/stop-local-cluster.sh.
set -euo pipefail

DIR=${INFANT_TISSUE_SLURM_DIR:-/var/spool/infant-tissue-slurm}
PARTITION=${INFANT_TISSUE_SLURM_PARTITION:-debug}
TIMEOUT=${INFANT_TISSUE_SLURM_TIMEOUT:-60}
CONF=$DIR/etc/slurm.conf
export SLURM_CONF=$CONF

die() { echo "start-local-cluster: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (slurmd and munged need it)"
for exe in munged munge slurmctld slurmd scontrol sinfo; do
    command -v "$exe" >/dev/null || die "$exe not found; apt-get install -y slurm-wlm munge"
done

mkdir -p "$DIR"/etc "$DIR"/state "$DIR"/spool "$DIR"/log

# --- munge: the authentication every SLURM message carries --------------------------------
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
    # munged refuses a key readable by others or owned by another user than itself.
    owner=root
    if id munge >/dev/null 2>&1; then owner=munge; fi
    chown "$owner": /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown "$owner": /run/munge /var/lib/munge /var/log/munge
    chmod 0755 /run/munge
    if [ "$owner" = munge ]; then
        runuser -u munge -- munged
    else
        munged --force
    fi
    for _ in $(seq 50); do munge_ok && break; sleep 0.1; done
    munge_ok || die "munged did not start (see /var/log/munge/munged.log)"
fi

# --- slurm.conf ------------------------------------------------------------------------------
HOST=$(hostname -s)
# `slurmd -C` prints this machine's real layout and memory; the node line must not claim more
# or slurmd registers the node as invalid and drains it.
NODE_LINE=$(slurmd -C | head -n 1)
case $NODE_LINE in NodeName=*) ;; *) die "unexpected 'slurmd -C' output: $NODE_LINE" ;; esac
NODE_LINE="$NODE_LINE NodeAddr=127.0.0.1 State=UNKNOWN"
NEW_CONF=$(cat <<EOF
# Written by containers/slurm/start-local-cluster.sh: a one-node test cluster.
ClusterName=infant-tissue-local
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups in a container: track processes through /proc, bind no tasks to cores.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Jobs without --mem get 1 GB per CPU, not the whole node (which would run them one by one).
DefMemPerCPU=1024
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
# Keep finished jobs visible to 'scontrol show job' for 10 minutes (there is no sacct here).
MinJobAge=600
KillWait=10
InactiveLimit=0
SlurmdTimeout=60
$NODE_LINE
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
changed=0
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$NEW_CONF" ]; then
    printf '%s\n' "$NEW_CONF" > "$CONF"
    changed=1
fi

# --- daemons ---------------------------------------------------------------------------------
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if alive "$DIR/slurmctld.pid" && [ "$changed" = 1 ]; then
    scontrol reconfigure || true
fi
if ! alive "$DIR/slurmctld.pid"; then
    slurmctld -f "$CONF"
fi
for _ in $(seq $((TIMEOUT * 10))); do scontrol ping >/dev/null 2>&1 && break; sleep 0.1; done
scontrol ping >/dev/null 2>&1 || die "slurmctld did not answer (see $DIR/log/slurmctld.log)"

if ! alive "$DIR/slurmd.pid"; then
    slurmd -f "$CONF"
fi

# Wait for the node to register; a node left down or drained by an earlier run is resumed.
deadline=$((SECONDS + TIMEOUT))
while :; do
    state=$(sinfo -h -n "$HOST" -o %t 2>/dev/null | head -n 1)
    case $state in
        idle* | mix* | alloc* | comp*) break ;;
        down* | drain* | drng*) scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true ;;
    esac
    [ "$SECONDS" -lt "$deadline" ] || die "node $HOST is '$state' after ${TIMEOUT}s (see $DIR/log/)"
    sleep 0.5
done

echo "local SLURM cluster up: node $HOST ($state), partition $PARTITION, logs in $DIR/log"
echo "SLURM_CONF=$CONF"
