#!/usr/bin/env bash
# One-node SLURM 22.05 cluster on loopback (munged + mariadbd + slurmdbd + slurmctld + slurmd)
# for the test suite; all state lives in one directory.  Usage:
#   tools/slurm_cluster.sh install | start DIR | stop DIR | status DIR
# After `start DIR`, clients need only `source DIR/env.sh` (exports SLURM_CONF).
# Ports: SLURM_CLUSTER_PORT_BASE (default 16800) + 6 mariadb, +17 slurmctld, +18 slurmd, +19 slurmdbd.
set -euo pipefail

PKGS=(slurm-wlm slurmdbd munge mariadb-server)
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)   # start order; stop is the reverse
NODE=localhost                                         # slurmd is started with -N so the hostname does not matter
BASE=${SLURM_CLUSTER_PORT_BASE:-16800}
DB_PORT=$((BASE + 6)) CTLD_PORT=$((BASE + 17)) SLURMD_PORT=$((BASE + 18)) DBD_PORT=$((BASE + 19))

die() { echo "slurm_cluster: $*" >&2; exit 1; }
say() { echo "slurm_cluster: $*"; }

# True if process $1 exists and is not a zombie (init here may reap killed daemons late).
alive() { local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) && [[ ${st%% *} != Z ]]; }

# pid of daemon $1 if its pid file names a live process with the expected name (guards against pid reuse).
pid_of() {
  local f="$D/run/$1.pid" pid
  [[ -s $f ]] || return 1
  pid=$(tr -dc 0-9 <"$f")
  [[ -n $pid && "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$1" ]] && alive "$pid" || return 1
  echo "$pid"
}
running_count() { local n=0 d; for d in "${DAEMONS[@]}"; do pid_of "$d" >/dev/null && n=$((n + 1)); done; echo $n; }

# Run daemon $1 in the foreground of its own session; we record its pid (it writes the same pid file itself).
launch() {
  local name=$1; shift
  setsid "$@" </dev/null >>"$D/log/$name.out" 2>&1 &
  echo $! >"$D/run/$name.pid"
}

# wait_for SECONDS DAEMON DESCRIPTION CMD...: poll CMD every 0.5 s; fail fast if DAEMON died, else on timeout.
wait_for() {
  local t=$1 daemon=$2 what=$3; shift 3
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    alive "$(tr -dc 0-9 <"$D/run/$daemon.pid")" || { tail -n 5 "$D/log/$daemon".* >&2 || true; die "$daemon exited during start (logs: $D/log/)"; }
    ((SECONDS < end)) || die "timed out after ${t}s waiting for $what (logs: $D/log/)"
    sleep 0.5
  done
}

cmd_install() {
  local missing=() p
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || { say "packages already installed: ${PKGS[*]}"; return 0; }
  ((EUID == 0)) || die "must be root to install ${missing[*]}"
  command -v apt-get >/dev/null || die "apt-get not found; install ${missing[*]} by hand"
  export DEBIAN_FRONTEND=noninteractive
  # Only refresh the package lists when the plain install fails (stale or empty lists).
  apt-get install -y "${missing[@]}" || { apt-get update && apt-get install -y "${missing[@]}"; } \
    || die "apt-get install ${missing[*]} failed"
}

write_configs() {
  local mem cpus
  cpus=$(nproc)
  mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  mem=$((mem * 95 / 100))   # a bit below what slurmd reports, or slurmd would register as invalid
  cat >"$D/slurm.conf" <<EOF
ClusterName=reslab
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# Own munge socket; cred_expire=5 makes a requeued job eligible again after ~6 s instead of 121 s.
AuthInfo=socket=$D/munge/munge.sock,cred_expire=5
StateSaveLocation=$D/spool/ctld
SlurmdSpoolDir=$D/spool/slurmd
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
# No cgroups in this sandbox: plain /proc process tracking; task/affinity pins a job to its CPUs.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
# Frequent scheduling passes so requeued/preempted jobs restart within seconds.
SchedulerParameters=sched_interval=2,bf_interval=1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$NODE
AccountingStoragePort=$DBD_PORT
# Connections to slurmdbd take the munge socket from here, not from AuthInfo.
AccountingStoragePass=$D/munge/munge.sock
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
# Deliver the job's --signal (e.g. USR1) as soon as it is preempted (22.05 spelling).
SlurmctldParameters=preempt_send_user_signal
KillWait=10
MinJobAge=10
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=10
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
# debug: default, never preempted; low: preempted (requeued) by any job in high.
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=OFF
PartitionName=low Nodes=$NODE MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=10
PartitionName=high Nodes=$NODE MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
  # slurmdbd has no -f: it reads slurmdbd.conf next to \$SLURM_CONF, and insists on mode 0600.
  (umask 077; cat >"$D/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.sock
DbdHost=$NODE
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$D/run/slurmdbd.pid
LogFile=$D/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
  )
  cat >"$D/env.sh" <<EOF
# Source this to talk to the test cluster in $D.
export SLURM_CONF=$D/slurm.conf
export SLURM_CLUSTER_DIR=$D
EOF
}

start_munged() {
  # Key and seed are private to DIR; slurm finds the socket through AuthInfo=socket=...
  [[ -s $D/munge/munge.key ]] || mungekey -c -k "$D/munge/munge.key" >/dev/null
  launch munged munged -F --socket="$D/munge/munge.sock" --key-file="$D/munge/munge.key" \
    --pid-file="$D/run/munged.pid" --seed-file="$D/munge/munged.seed"
  wait_for 20 munged munged munge -n -S "$D/munge/munge.sock"
}

start_mariadbd() {
  local sql="mariadb --no-defaults -S $D/mysql.sock -uroot"
  if [[ ! -d $D/mysql/mysql ]]; then
    mariadb-install-db --no-defaults --datadir="$D/mysql" --user=root --auth-root-authentication-method=socket \
      --skip-test-db >"$D/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed, see $D/log/mariadb-install.log"
  fi
  # --no-defaults: ignore /etc/mysql; unix socket in DIR plus a loopback-only TCP port for slurmdbd.
  launch mariadbd mariadbd --no-defaults --user=root --datadir="$D/mysql" --socket="$D/mysql.sock" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$D/run/mariadbd.pid" \
    --log-error="$D/log/mariadbd.log" --innodb-use-native-aio=0 --innodb-lock-wait-timeout=900
  wait_for 60 mariadbd mariadbd $sql -e 'SELECT 1'
  $sql -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
           GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

start_slurmdbd() {
  launch slurmdbd slurmdbd -D
  wait_for 60 slurmdbd slurmdbd sacctmgr -n list cluster
  # Register cluster/account/user before slurmctld starts, so it finds its cluster at once.
  sacctmgr -n -P list cluster format=cluster | grep -qx reslab || sacctmgr -i add cluster reslab >/dev/null
  sacctmgr -n -P list account format=account | grep -qx reslab || sacctmgr -i add account reslab cluster=reslab >/dev/null
  sacctmgr -n -P list user format=user | grep -qx root || sacctmgr -i add user root account=reslab cluster=reslab >/dev/null
}

node_idle() { [[ "$(sinfo -h -n "$NODE" -o %t | sort -u)" == idle ]]; }
job_done() { [[ "$(sacct -n -X -P -j "$1" -o State)" == COMPLETED ]]; }

cmd_start() {
  local t0=$SECONDS n d job
  for d in slurmctld slurmd slurmdbd munged mariadbd mungekey mariadb-install-db; do
    command -v "$d" >/dev/null || die "$d not found; run: $0 install"
  done
  mkdir -p "$D"/{run,log,munge,spool/ctld,spool/slurmd,mysql}
  chmod 0755 "$D" "$D/munge"   # munged refuses group/world-writable dirs
  n=$(running_count)
  if ((n == ${#DAEMONS[@]})); then say "already running in $D"; return 0; fi
  ((n == 0)) || { say "partially running in $D ($n/${#DAEMONS[@]}); restarting"; cmd_stop; }
  write_configs
  export SLURM_CONF=$D/slurm.conf
  start_munged
  start_mariadbd
  start_slurmdbd
  launch slurmctld slurmctld -D -f "$SLURM_CONF"
  wait_for 30 slurmctld slurmctld scontrol ping
  launch slurmd slurmd -D -f "$SLURM_CONF" -N "$NODE"
  wait_for 60 slurmd "node $NODE idle" node_idle
  # End-to-end probe: a job runs and its record reaches the accounting database.
  job=$(sbatch --parsable -o /dev/null -J probe --wrap true)
  wait_for 60 slurmdbd "probe job $job COMPLETED in sacct" job_done "$job"
  say "started in $D in $((SECONDS - t0))s; use: source $D/env.sh"
}

# Kill job steps left behind by slurmd, with their job process groups (slurmstepd daemonizes, so we find
# ours by the SLURM_CONF in its environment).
kill_stepds() {
  local p c g
  for p in $(pgrep -x slurmstepd || true); do
    { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qx "SLURM_CONF=$D/slurm.conf" || continue
    for c in $(pgrep -P "$p" || true); do
      g=$(ps -o pgid= "$c" | tr -dc 0-9) && ((g > 1)) && kill -KILL -- "-$g" 2>/dev/null || true
    done
    kill -KILL "$p" 2>/dev/null || true
  done
}

stop_daemon() {
  local name=$1 pid end
  pid=$(pid_of "$name") || { rm -f "$D/run/$name.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  end=$((SECONDS + 30))
  while alive "$pid" && ((SECONDS < end)); do sleep 0.2; done
  if alive "$pid"; then say "$name ($pid) ignored SIGTERM for 30s; SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
  while alive "$pid"; do sleep 0.1; done
  rm -f "$D/run/$name.pid"
  say "stopped $name ($pid)"
}

cmd_stop() {
  local i jobs end
  export SLURM_CONF=$D/slurm.conf
  # Cancel jobs first so their processes end with them rather than outliving slurmd.
  if pid_of slurmctld >/dev/null && pid_of slurmd >/dev/null; then
    jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [[ -n $jobs ]]; then
      scancel $jobs 2>/dev/null || true
      end=$((SECONDS + 20))
      while [[ -n "$(squeue -h -o %i 2>/dev/null)" ]] && ((SECONDS < end)); do sleep 0.5; done
    fi
  fi
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    [[ ${DAEMONS[i]} == slurmd ]] && kill_stepds
    stop_daemon "${DAEMONS[i]}"
  done
  kill_stepds
}

cmd_status() {
  local d pid rc=0
  for d in "${DAEMONS[@]}"; do
    if pid=$(pid_of "$d"); then say "$d running (pid $pid)"; else say "$d stopped"; rc=1; fi
  done
  if pid_of slurmctld >/dev/null; then SLURM_CONF=$D/slurm.conf sinfo || true; fi
  return $rc
}

case "${1:-}" in
  install) cmd_install ;;
  start | stop | status)
    [[ -n ${2:-} ]] || die "usage: $0 $1 DIR"
    [[ $1 == start ]] && mkdir -p "$2"
    [[ -d $2 ]] || { say "no state directory $2: nothing running"; [[ $1 == stop ]]; exit; }
    D=$(cd "$2" && pwd)
    "cmd_$1"
    ;;
  *) die "usage: $0 install | start DIR | stop DIR | status DIR" ;;
esac
