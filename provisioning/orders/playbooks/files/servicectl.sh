#!/bin/sh
# servicectl.sh start WORKDIR USER COMMAND... | stop WORKDIR
# Starts a service in its own session (so it outlives the playbook and is not hung up when the
# runner's terminal closes) with its environment file loaded, and tracks it by a pid file.
# Layout: WORKDIR/app (the checkout), WORKDIR/home (HOME, service.env), and here, out of the service's
# reach, servicectl.sh, service.pid and service.log.
# USER "-" runs the service as whoever runs this (a target host's deploy user); a user name runs it as
# that unprivileged user (the local target, where this runs as root), with no supplementary rights and
# none of the caller's environment either way.
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
  user=$1
  shift
  cd "$workdir/app"
  umask 077
  set -- env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$workdir/home" LANG=C.UTF-8 \
    sh -c 'set -a; . "$0/home/service.env"; set +a; exec "$@"' "$workdir" "$@"
  if [ "$user" != "-" ]; then
    set -- setpriv --reuid="$user" --regid="$user" --init-groups --no-new-privs --inh-caps=-all "$@"
  fi
  # setsid without a fork (we are not a group leader here), so $! is the service's own pid.
  setsid "$@" >"$workdir/service.log" 2>&1 </dev/null &
  echo "$!" >"$pidfile"
  echo "$!"
  ;;
*)
  echo "usage: servicectl.sh start WORKDIR USER COMMAND... | stop WORKDIR" >&2
  exit 2
  ;;
esac
