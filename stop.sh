#!/usr/bin/env bash
# Stop Pipeline-App: SIGTERM lets uvicorn drain in-flight requests, then the process exits.
set -euo pipefail
cd "$(dirname "$0")"
data=$(py3/bin/python -c 'from app.core.config import load_settings; print(load_settings().data_dir)')
pidfile="$data/pipeline-app.pid"
if [ ! -f "$pidfile" ]; then
  echo "stop.sh: not running (no pid file $pidfile)"
  exit 0
fi
pid=$(cat "$pidfile")
if ! kill -0 "$pid" 2>/dev/null; then
  echo "stop.sh: removing stale pid file (pid $pid is not running)"
  rm -f "$pidfile"
  exit 0
fi
kill -TERM "$pid"
for _ in $(seq 1 400); do
  kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; echo "stopped (pid $pid)"; exit 0; }
  sleep 0.1
done
echo "stop.sh: pid $pid did not stop within 40 s; sending SIGKILL" >&2
kill -KILL "$pid" 2>/dev/null || true
rm -f "$pidfile"
