# Sourced by tests/cli/serve*.sh (not a test itself). Needs RLHF, W and fail().
# serve_start NAME ARGS...: starts `rlhf serve ARGS --port 0` on 127.0.0.1 in the background, waits (bounded)
# for its "listening on" line and sets NAME_PID and NAME_PORT. serve_stop NAME: SIGTERM, bounded wait, and
# sets NAME_RC to its exit status. Every server is killed when the test exits, whatever happens.
SERVE_PIDS=()
serve_cleanup() {
  for p in "${SERVE_PIDS[@]}"; do { kill -KILL "$p" && wait "$p"; } 2>/dev/null; done
  rm -rf "$W"
}
trap serve_cleanup EXIT

serve_start() {
  local name=$1 pid port i
  shift
  "$RLHF" serve --host 127.0.0.1 --port 0 "$@" 2>"$W/$name.log" &
  pid=$!
  SERVE_PIDS+=("$pid")
  for ((i = 0; i < 600; i++)); do  # up to 60 s: the machine is shared
    port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\) .*|\1|p' "$W/$name.log")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$port" ]; then
    fail "$name: the server did not start: $(tail -n 3 "$W/$name.log")"
    return 1
  fi
  printf -v "${name}_PID" '%s' "$pid"
  printf -v "${name}_PORT" '%s' "$port"
}

serve_stop() {
  local name=$1 pid i
  pid=${name}_PID
  pid=${!pid}
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    fail "$name: still running 30 s after SIGTERM"
    kill -KILL "$pid"
  fi
  wait "$pid"
  printf -v "${name}_RC" '%s' "$?"
}
