#!/usr/bin/env bash
# Recovery figures against `stackpilot sim` with the headless engine at a 5 s tick
# (servers refreshed every 5 s, health checked every 5 s, 3 failures make a member
# unhealthy):
#  1. detection-to-action time for each failure kind: an unexpected SHUTOFF, ERROR,
#     a hung application, a compute host down, a member deleted behind the
#     engine's back (from the failure made through the simulator's control API to
#     the engine's first repair event);
#  2. the requests the engine makes per tick with 100 healthy members, by service
#     (Nova, and the health checks to the guests), over one minute.
# Usage: benches/recovery.sh path/to/stackpilot
set -euo pipefail
BIN=${1:?usage: recovery.sh path/to/stackpilot}
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
export STACKPILOT_SIM_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
BASE="http://127.0.0.1:$PORT"
"$BIN" sim --port "$PORT" --speed 10 > "$WORK/sim.log" 2>&1 &
SIM=$!
ENGINE=
trap 'kill $SIM $ENGINE 2>/dev/null; rm -rf "$WORK"' EXIT
ctl() { curl -sf -H "X-Sim-Token: $STACKPILOT_SIM_TOKEN" -H 'content-type: application/json' "$@"; }
for _ in $(seq 1 100); do ctl "$BASE/_sim/state" >/dev/null && break; sleep 0.1; done
token() {
  python3 - "$BASE" <<'PY'
import json, sys, urllib.request
body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": "secret"}}},
                 "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
r = urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/identity/v3/auth/tokens", json.dumps(body).encode(), {"content-type": "application/json"}))
print(r.headers["X-Subject-Token"])
PY
}
ctl "$BASE/_sim/clouds.yaml" > "$WORK/clouds.yaml"
ctl -X POST "$BASE/_sim/quota" -d '{"instances": 500, "cores": 1000, "ram": 2000000}' >/dev/null
export OS_CLIENT_CONFIG_FILE="$WORK/clouds.yaml" OS_CLOUD=sim XDG_STATE_HOME="$WORK/state" XDG_CONFIG_HOME="$WORK/cfg"
mkdir -p "$WORK/cfg/stackpilot/policies"
cat > "$WORK/cfg/stackpilot/config.toml" <<EOF
[engine]
mode = "auto"
tick = "5s"
metrics_port = 0
[refresh]
servers = "5s"
limits = "5s"   # the hosts (os-services) are read with the limits
EOF
policy() {
  cat > "$WORK/cfg/stackpilot/policies/web.toml" <<EOF
[app]
name = "web"
cloud = "sim"
[deploy]
image = "cirros-0.6.2-x86_64-disk"
flavor = "m1.tiny"
networks = ["private"]
capacity = { min = 1, max = 200, desired = $1 }
[readiness]
min_ready_seconds = 0
http = { url = "$BASE/guest/{id}/health", timeout = "2s" }
[recovery]
health_interval = "5s"
unhealthy_threshold = 3
max_concurrent = 5
max_unhealthy = "50%"
EOF
}
policy 6
"$BIN" engine --cloud sim > "$WORK/engine.log" 2>&1 &
ENGINE=$!
DB="$WORK/state/stackpilot/stackpilot.db"
# SQL on the engine's store.
q() { python3 - "$DB" "$1" <<'PY'
import sqlite3, sys
try:
    c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=5)
    for row in c.execute(sys.argv[2]):
        print("|".join("" if x is None else str(x) for x in row))
except sqlite3.Error:
    pass
PY
}
# Members marked ready (stackpilot:ready), from Nova.
ready() {
  curl -sf -H "X-Auth-Token: $(token)" "$BASE/compute/v2.1/servers/detail" | python3 -c '
import json, sys
print(sum(1 for s in json.load(sys.stdin)["servers"] if "stackpilot:ready" in s.get("metadata", {}) and s["status"] == "ACTIVE"))'
}
for _ in $(seq 1 120); do [ "$(ready)" -ge 6 ] 2>/dev/null && break; sleep 1; done
echo "members ready: $(ready)"
servers() { "$BIN" servers -f json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["Name"].startswith("web-r") and s["Status"] == "ACTIVE":
        print(s["ID"], s["Name"])' ; }

# One failure: $1 kind, $2 the control call (a path, or host/delete), $3 its body,
# $4 the action to wait for, $5 which member (by name order: each kind its own).
measure() {
  local kind=$1 how=$2 body=$3 want=$4 nth=$5 id name t0 t1 since
  read -r id name < <(servers | sort -k2 | sed -n "${nth}p")
  since=$(q "select coalesce(max(id), 0) from events")
  t0=$(date +%s.%N)
  case $how in
    delete) curl -sf -X DELETE -H "X-Auth-Token: $(token)" "$BASE/compute/v2.1/servers/$id" >/dev/null ;;
    host) local host
          host=$(curl -sf -H "X-Auth-Token: $(token)" "$BASE/compute/v2.1/servers/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["server"]["OS-EXT-SRV-ATTR:host"])')
          ctl -X POST "$BASE/_sim/hosts/$host" -d '{"state": "down"}' >/dev/null ;;
    *) ctl -X POST "$BASE/_sim/servers/$id/$how" -d "$body" >/dev/null ;;
  esac
  for _ in $(seq 1 600); do
    t1=$(q "select at from events where id > $since and action='$want' and (target='$name' or '$want'='create') order by id limit 1")
    [ -n "$t1" ] && break
    sleep 0.2
  done
  if [ -z "$t1" ]; then
    echo "$kind: no $want within 120 s; the engine's events since:"
    q "select at, action, target, substr(reason, 1, 100) from events where id > $since and action != 'alert' order by id" | sed 's/^/    /'
    return
  fi
  python3 -c "
from datetime import datetime, timezone
t1 = datetime.fromisoformat('$t1'.replace('Z', '+00:00')).timestamp()
print(f'$kind: {\"$want\"} {t1 - $t0:.1f} s after the failure')"
  if [ "$how" = host ]; then ctl -X POST "$BASE/_sim/hosts/$host" -d '{"state": "up"}' >/dev/null; fi
  sleep 12
}
measure "unexpected SHUTOFF" state '{"status": "SHUTOFF"}' start 1
measure "ERROR" state '{"status": "ERROR", "message": "hypervisor crash"}' rebuild 2
measure "hung application" guest '{"health": "hung", "until": "reboot-soft"}' reboot-soft 3
measure "compute host down" host '' drain 4
measure "member deleted" delete '' create 5

# Requests per tick with 100 healthy members.
policy 100
for _ in $(seq 1 300); do [ "$(ready)" -ge 100 ] 2>/dev/null && break; sleep 1; done
sleep 15
before=$(ctl "$BASE/_sim/stats")
sleep 60
after=$(ctl "$BASE/_sim/stats")
python3 - "$before" "$after" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1])["requests"], json.loads(sys.argv[2])["requests"]
ticks = 60 / 5
for k in sorted(set(a) | set(b)):
    n = b.get(k, 0) - a.get(k, 0)
    if n:
        print(f"  {k}: {n} in 60 s = {n / ticks:.1f} per 5 s tick")
PY
