#!/usr/bin/env bash
# Scale figures of the release console against `stackpilot sim`:
#  1. wall time of `stackpilot servers` and of `openstack server list` at 10,000
#     servers (3 runs each);
#  2. for 5, 10,000 and 100,000 servers (one hour of metrics for 500 of them, or
#     all of them when fewer): the console's resident memory and its idle CPU
#     (% of one core over IDLE seconds, refresh on, Servers view on screen).
# The simulator runs on the wall clock (SPEED=1, as a real cloud does): after
# seeding, its clock is moved on by an hour so the console's first read finds an
# hour of metrics. SPEED=60 instead runs it sixty times faster and waits a
# minute for that hour: a stress figure, with sixty times the metrics a real
# cloud produces while the console idles.
# Usage: benches/scale.sh path/to/stackpilot [path/to/openstack]
# Environment: COUNTS (default "5 10000 100000"), IDLE (seconds, default 60),
# SPEED (default 1).
# Not run in CI: it takes a few minutes per count.
set -euo pipefail
BIN=$(realpath "${1:?usage: scale.sh path/to/stackpilot [openstack]}")
OSC=${2:-openstack}
COUNTS=${COUNTS:-5 10000 100000}
IDLE=${IDLE:-60}
SPEED=${SPEED:-1}
WORK=$(mktemp -d)
SESSION=sp-scale-$$
SIM=
cleanup() {
  [ -n "$SIM" ] && kill "$SIM" 2>/dev/null
  tmux kill-session -t "$SESSION" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
export STACKPILOT_SIM_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
ctl() { curl -sf -H "X-Sim-Token: $STACKPILOT_SIM_TOKEN" "$@"; }
HZ=$(getconf CLK_TCK)

# A fresh simulator holding $1 servers; metrics for the first min($1, 500).
start_sim() {
  local n=$1 with=$(( $1 < 500 ? $1 : 500 ))
  [ -n "$SIM" ] && { kill "$SIM" 2>/dev/null; wait "$SIM" 2>/dev/null || true; }
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  "$BIN" sim --port "$PORT" --speed "$SPEED" > "$WORK/sim.log" 2>&1 &
  SIM=$!
  for _ in $(seq 1 100); do ctl "http://127.0.0.1:$PORT/_sim/state" >/dev/null && break; sleep 0.1; done
  ctl -X POST "http://127.0.0.1:$PORT/_sim/seed" -d "{\"count\": $with, \"prefix\": \"app\", \"app\": \"web\", \"metrics\": true}" >/dev/null
  if [ "$n" -gt "$with" ]; then
    ctl -X POST "http://127.0.0.1:$PORT/_sim/seed" -d "{\"count\": $(( n - with )), \"prefix\": \"bulk\"}" >/dev/null
  fi
  if [ "$SPEED" = 1 ]; then
    ctl -X POST "http://127.0.0.1:$PORT/_sim/clock/advance" -d '{"seconds": 3600}' >/dev/null
  fi
  ctl "http://127.0.0.1:$PORT/_sim/clouds.yaml" > "$WORK/clouds.yaml"
  export OS_CLIENT_CONFIG_FILE="$WORK/clouds.yaml" OS_CLOUD=sim XDG_STATE_HOME="$WORK/state"
}

# Wall time of a command; a command that fails prints its failure, never a time.
t() {
  local s e
  s=$(date +%s.%N)
  if ! "$@" > "$WORK/out" 2>&1; then echo -n "FAILED($(head -c 120 "$WORK/out" | tr '\n' ' '))"; return; fi
  e=$(date +%s.%N); printf '%.2f' "$(echo "$e - $s" | bc)"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# The console against the simulator's $1 servers: RSS and idle CPU.
console() {
  local n=$1 pid t0 t1 c0 c1
  mkdir -p "$WORK/cfg/stackpilot"
  printf '[metrics]\nretention = "1h"\nmax_servers = 500\n[refresh]\nmetrics = "15s"\n' > "$WORK/cfg/stackpilot/config.toml"
  rm -f "$WORK/console.pid"
  tmux new-session -d -s "$SESSION" -x 200 -y 60 \
    "sh -c 'echo \$\$ > $WORK/console.pid; exec env XDG_CONFIG_HOME=$WORK/cfg OS_CLIENT_CONFIG_FILE=$WORK/clouds.yaml XDG_STATE_HOME=$WORK/state $BIN --cloud sim'"
  for _ in $(seq 1 50); do [ -s "$WORK/console.pid" ] && break; sleep 0.1; done
  pid=$(cat "$WORK/console.pid")
  # At speed 60 the hour of metrics takes a minute to be made; on the wall
  # clock it is there, the console only has to start and read it.
  if [ "$SPEED" = 1 ]; then sleep 20; else sleep 75; fi
  tmux send-keys -t "$SESSION" ':servers' Enter
  sleep 5
  tmux capture-pane -p -t "$SESSION" | head -3 | cut -c1-120
  t0=$(date +%s.%N); c0=$(cpu_ticks "$pid")
  sleep "$IDLE"
  t1=$(date +%s.%N); c1=$(cpu_ticks "$pid")
  printf '%-8s servers: console RSS %s, idle CPU %.2f %% of a core over %ss (peak RSS %s)\n' "$n" \
    "$(awk '/VmRSS/ {print $2, $3}' "/proc/$pid/status")" \
    "$(echo "($c1 - $c0) / $HZ / ($t1 - $t0) * 100" | bc -l)" "$IDLE" \
    "$(awk '/VmHWM/ {print $2, $3}' "/proc/$pid/status")"
  tmux kill-session -t "$SESSION" 2>/dev/null || true
}

for n in $COUNTS; do
  start_sim "$n"
  if [ "$n" = 10000 ]; then
    echo "servers listed by stackpilot: $("$BIN" servers -f json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
    echo -n "stackpilot servers (s):      "; for i in 1 2 3; do echo -n "$(t "$BIN" servers) "; done; echo
    if command -v "$OSC" >/dev/null; then
      # The CLI pages through every server itself (`--limit -1` is refused by it).
      echo "servers listed by openstack: $("$OSC" server list -f value -c ID | wc -l)"
      echo -n "openstack server list (s):   "; for i in 1 2 3; do echo -n "$(t "$OSC" server list) "; done; echo
    fi
  fi
  console "$n"
done
