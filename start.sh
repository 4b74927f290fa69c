#!/usr/bin/env bash
# Set up (venv, build, schema, RBAC bootstrap) and start Pipeline-App in the background.
# Usage: ./start.sh [--demo] [--workers N]   (port: PIPELINE_PORT, default 9090)
#   --demo  fill an empty app database with a small demo catalog first (never a database with pipelines)
set -euo pipefail
cd "$(dirname "$0")"
demo=no
args=()
for a in "$@"; do
  if [ "$a" = "--demo" ]; then demo=yes; else args+=("$a"); fi
done
set -- "${args[@]+"${args[@]}"}"
./build.sh >/dev/null
data=$(py3/bin/python -c 'from app.core.config import load_settings; print(load_settings().data_dir)')
port=$(py3/bin/python -c 'from app.core.config import load_settings; print(load_settings().port)')
host=$(py3/bin/python -c 'from app.core.config import load_settings; print(load_settings().host)')
mkdir -p "$data/logs"
pidfile="$data/pipeline-app.pid"
if [ -f "$pidfile" ]; then
  if kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "start.sh: Pipeline-App is already running (pid $(cat "$pidfile")); ./stop.sh first" >&2
    exit 1
  fi
  echo "start.sh: removing stale pid file $pidfile (pid $(cat "$pidfile") is not running)"
  rm -f "$pidfile"
fi
if py3/bin/python -c "import socket,sys; s=socket.socket(); sys.exit(0 if s.connect_ex(('$host', $port)) == 0 else 1)"; then
  echo "start.sh: port $port on $host is already in use by another program; set PIPELINE_PORT" >&2
  exit 1
fi
py3/bin/pipeline-app db sync >"$data/logs/sync.log" && echo "schema: $(tail -n 1 "$data/logs/sync.log")"
py3/bin/pipeline-app rbac bootstrap
if [ "$demo" = yes ]; then
  py3/bin/pipeline-app demo || echo "start.sh: no demo data added (see above); starting anyway"
fi
# server.out holds only what the process prints outside the rotated JSON logs (start-up, a crash):
# kept from the previous start as server.out.1, never growing across starts
[ -f "$data/logs/server.out" ] && mv -f "$data/logs/server.out" "$data/logs/server.out.1"
nohup py3/bin/pipeline-app serve "$@" >"$data/logs/server.out" 2>&1 &
echo $! >"$pidfile"
for _ in $(seq 1 100); do
  if py3/bin/python -c "import urllib.request; urllib.request.urlopen('http://$host:$port/healthz', timeout=1)" 2>/dev/null; then
    echo "Pipeline-App is running: http://$host:$port/  (pid $(cat "$pidfile"), logs in $data/logs/)"
    exit 0
  fi
  if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "start.sh: the server exited; see $data/logs/server.out" >&2
    tail -n 20 "$data/logs/server.out" >&2
    rm -f "$pidfile"
    exit 1
  fi
  sleep 0.2
done
echo "start.sh: the server did not answer /healthz within 20 s; see $data/logs/server.out" >&2
exit 1
