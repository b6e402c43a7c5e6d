#!/usr/bin/env bash
# Stop the daemons that .ci/slurm/setup.sh started, by the PIDs in their PID files (never by name).
# A munged that was already running before setup.sh is left alone (setup.sh records no PID for it).
# Leaves $IDC_SLURM_BASE (config, logs, database) in place for inspection; delete it to start afresh.
set -uo pipefail
BASE=${IDC_SLURM_BASE:-/tmp/idc-slurm}
[ -d "$BASE/run" ] || { echo "slurm-stop: nothing to stop ($BASE/run does not exist)"; exit 0; }
[ "$(id -u)" = 0 ] || { echo "slurm-stop: error: must run as root" >&2; exit 1; }
status=0
# Order matters: node daemon, controller, then accounting, database, and munge last.
for name in slurmd slurmctld slurmdbd mysqld munged; do
  f="$BASE/run/$name.pid"
  [ -e "$f" ] || continue
  pid=$(cat "$f" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "slurm-stop: $name (pid $pid) ignored SIGTERM for 15 s, sending SIGKILL"
      kill -KILL "$pid" || status=1
    fi
    echo "slurm-stop: stopped $name (pid $pid)"
  fi
  # the daemon may remove its own PID file on exit
  rm -f "$f"
done
exit $status
