# Sourced by the bench scripts: starts the server on a free loopback port and stops it.
#   start_server BINARY REPOSITORY [flags...]   sets SERVER_PID and ADDR; needs WORK (a scratch dir)
#   stop_server
# The server's log goes to $WORK/server.log; start_server waits (60 s at most) until it serves.
start_server() {
  local bin="$1" repo="$2"
  shift 2
  rm -f "$WORK/port"
  "$bin" --model_repository="$repo" --host=127.0.0.1 --port=0 --metrics_port=-1 --port_file="$WORK/port" \
    "$@" 2>"$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    if [[ -s "$WORK/port" ]] && grep -q "serving" "$WORK/server.log"; then
      ADDR="127.0.0.1:$(cat "$WORK/port")"; return
    fi
    sleep 0.1
  done
  echo "server did not start:" >&2; cat "$WORK/server.log" >&2; exit 1
}
stop_server() { kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""; }
