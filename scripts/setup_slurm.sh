#!/usr/bin/env bash
# A single-node Slurm on this machine, for testing real job-array launches (tests/scale/test_slurm_array.py).
#
#   sudo scripts/setup_slurm.sh        # installs Debian's slurm-wlm + munge, writes slurm.conf, starts daemons
#
# Idempotent: with the daemons up and slurm.conf current it only checks that the node answers (about a
# second, no root needed). Needs root and apt (Debian/Ubuntu) otherwise; exits non-zero, saying why,
# where it cannot set Slurm up. Settings follow what a container without systemd or cgroups allows:
# ProctrackType=proctrack/linuxproc, TaskPlugin=task/none, SelectType=select/cons_tres, SlurmUser=root,
# one node = this host with all its CPUs and half its memory. No accounting database: `sacct` is
# unavailable, `scontrol show job` keeps finished jobs for MinJobAge seconds.
set -euo pipefail

log() { echo "setup_slurm: $*" >&2; }
die() { log "$*"; exit 1; }

NODE=$(hostname -s)
CONF_DIR=/etc/slurm
[[ -d /etc/slurm-llnl && ! -d /etc/slurm ]] && CONF_DIR=/etc/slurm-llnl

node_state() { timeout 10 sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n1; }
node_up() {
  command -v sinfo >/dev/null 2>&1 || return 1
  local state
  state=$(node_state) || return 1
  [[ "$state" == idle* || "$state" == mixed* || "$state" == allocated* || "$state" == completing* ]]
}

slurm_conf() {
  local cpus total_mb mem_mb
  cpus=$(nproc)
  # Half of physical memory in whole GiB: deterministic, so re-runs write the same file.
  total_mb=$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)
  mem_mb=$(( total_mb / 2 / 1024 * 1024 ))
  (( mem_mb >= 1024 )) || mem_mb=1024
  cat <<CONF
# Written by scripts/setup_slurm.sh: a single-node cluster for tests.
ClusterName=local
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
KillWait=5
InactiveLimit=0
SlurmdTimeout=60
# A job that asks for no memory gets its CPUs' share, so array tasks run side by side.
DefMemPerCPU=$(( mem_mb / cpus ))
NodeName=$NODE CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
}

if node_up && [[ "$(slurm_conf)" == "$(cat "$CONF_DIR/slurm.conf" 2>/dev/null)" ]]; then
  log "slurm already running; node $NODE is $(node_state)"
  exit 0
fi

[[ $(id -u) == 0 ]] || die "needs root (to install packages, write $CONF_DIR/slurm.conf and run slurmctld/slurmd)"

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || die "no apt-get: install slurm-wlm and munge by hand"
  log "installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null || die "apt-get install slurm-wlm munge failed"
fi
[[ -d /etc/slurm-llnl && ! -d /etc/slurm ]] && CONF_DIR=/etc/slurm-llnl

# --- munge: one key, a running daemon --------------------------------------------------------------
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
  if command -v mungekey >/dev/null 2>&1; then mungekey --create --force >/dev/null 2>&1 || true; fi
  [[ -s /etc/munge/munge.key ]] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge 2>/dev/null || true
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0400 /etc/munge/munge.key
chmod 0755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "starting munged"
  if id munge >/dev/null 2>&1; then
    su -s /bin/sh munge -c "munged" 2>/dev/null || munged --force
  else
    munged --force
  fi
  for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
  munge -n | unmunge >/dev/null || die "munged did not start"
fi

# --- slurm.conf --------------------------------------------------------------------------------------
mkdir -p "$CONF_DIR" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
slurm_conf > "$CONF_DIR/slurm.conf.new"
if ! cmp -s "$CONF_DIR/slurm.conf.new" "$CONF_DIR/slurm.conf" 2>/dev/null; then
  mv "$CONF_DIR/slurm.conf.new" "$CONF_DIR/slurm.conf"
  RESTART=1
else
  rm -f "$CONF_DIR/slurm.conf.new"
  RESTART=0
fi

# --- daemons -----------------------------------------------------------------------------------------
running() { pgrep -x "$1" >/dev/null 2>&1; }
if (( RESTART )); then
  for d in slurmd slurmctld; do
    if running "$d"; then
      log "restarting $d (configuration changed)"
      kill $(pgrep -x "$d") 2>/dev/null || true
      for _ in $(seq 20); do running "$d" || break; sleep 0.5; done
    fi
  done
fi
running slurmctld || { log "starting slurmctld"; slurmctld || die "slurmctld failed to start: $(tail -n 3 /var/log/slurm/slurmctld.log 2>/dev/null)"; }
running slurmd || { log "starting slurmd"; slurmd || die "slurmd failed to start: $(tail -n 3 /var/log/slurm/slurmd.log 2>/dev/null)"; }

state=""
for _ in $(seq 60); do
  if node_up; then
    log "node $NODE is $(node_state)"
    exit 0
  fi
  state=$(node_state || true)
  if [[ "$state" == down* || "$state" == drain* ]]; then
    scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
  fi
  sleep 1
done
die "node $NODE did not come up; see /var/log/slurm/slurmctld.log and slurmd.log (state: ${state:-unknown})"
