#!/usr/bin/env bash
# Scale figures against `stackpilot sim` holding 10,000 servers:
#  1. wall time of `stackpilot servers` and of `openstack server list` (3 runs each);
#  2. resident memory of the console showing the 10,000 servers with one hour of
#     metrics for 500 of them.
# Usage: benches/scale.sh path/to/stackpilot [path/to/openstack]
set -euo pipefail
BIN=${1:?usage: scale.sh path/to/stackpilot [openstack]}
OSC=${2:-openstack}
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
export STACKPILOT_SIM_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
"$BIN" sim --port "$PORT" --speed 60 > "$WORK/sim.log" 2>&1 &
ctl() { curl -sf -H "X-Sim-Token: $STACKPILOT_SIM_TOKEN" "$@"; }
SIM=$!
trap 'kill $SIM 2>/dev/null; tmux kill-session -t sp-scale 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do ctl "http://127.0.0.1:$PORT/_sim/state" >/dev/null && break; sleep 0.1; done
ctl -X POST "http://127.0.0.1:$PORT/_sim/seed" -d '{"count": 500, "prefix": "app", "app": "web", "metrics": true}' >/dev/null
ctl -X POST "http://127.0.0.1:$PORT/_sim/seed" -d '{"count": 9500, "prefix": "bulk"}' >/dev/null
ctl "http://127.0.0.1:$PORT/_sim/clouds.yaml" > "$WORK/clouds.yaml"
export OS_CLIENT_CONFIG_FILE="$WORK/clouds.yaml" OS_CLOUD=sim XDG_STATE_HOME="$WORK/state"

# Wall time of a command; a command that fails prints its failure, never a time.
t() {
  local s e
  s=$(date +%s.%N)
  if ! "$@" > "$WORK/out" 2>&1; then echo -n "FAILED($(head -c 120 "$WORK/out" | tr '\n' ' '))"; return; fi
  e=$(date +%s.%N); printf '%.2f' "$(echo "$e - $s" | bc)"
}
echo "servers listed by stackpilot: $("$BIN" servers -f json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
echo -n "stackpilot servers (s):      "; for i in 1 2 3; do echo -n "$(t "$BIN" servers) "; done; echo
if command -v "$OSC" >/dev/null; then
  # The CLI pages through every server itself (`--limit -1` is refused by it).
  echo "servers listed by openstack: $("$OSC" server list -f value -c ID | wc -l)"
  echo -n "openstack server list (s):   "; for i in 1 2 3; do echo -n "$(t "$OSC" server list) "; done; echo
fi

# The console: one hour of simulated metrics at speed 60 takes a minute.
mkdir -p "$WORK/cfg/stackpilot"
printf '[metrics]\nretention = "1h"\nmax_servers = 500\n[refresh]\nmetrics = "15s"\n' > "$WORK/cfg/stackpilot/config.toml"
tmux new-session -d -s sp-scale -x 200 -y 60 "env XDG_CONFIG_HOME=$WORK/cfg OS_CLIENT_CONFIG_FILE=$WORK/clouds.yaml XDG_STATE_HOME=$WORK/state $BIN --cloud sim"
sleep 75
PID=$(pgrep -f "$BIN --cloud sim" | head -1)
tmux send-keys -t sp-scale ':servers' Enter
sleep 2
tmux capture-pane -p -t sp-scale | head -4
echo "console RSS with 10,000 servers and 1 h of metrics for 500: $(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status)"
