#!/bin/sh
# servicectl.sh start WORKDIR COMMAND... | stop WORKDIR
# Starts a service in its own session (so it outlives the playbook and is not hung up when the
# runner's terminal closes) with its environment file loaded, and tracks it by a pid file.
set -eu
action=$1
workdir=$2
shift 2
pidfile="$workdir/service.pid"

alive() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

case "$action" in
stop)
  if alive; then
    pid=$(cat "$pidfile")
    # The service leads its own process group: stop the group, then make sure.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 50 ]; do
      sleep 0.1
      i=$((i + 1))
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "stopped $pid"
  fi
  rm -f "$pidfile"
  ;;
start)
  cd "$workdir/app"
  # setsid without a fork (we are not a group leader here), so $! is the service's own pid.
  setsid sh -c 'set -a; . "$0/service.env"; set +a; exec "$@"' "$workdir" "$@" \
    >"$workdir/service.log" 2>&1 </dev/null &
  echo "$!" >"$pidfile"
  echo "$!"
  ;;
*)
  echo "usage: servicectl.sh start WORKDIR COMMAND... | stop WORKDIR" >&2
  exit 2
  ;;
esac
