#!/usr/bin/env bash
# Drive the real `openstack` CLI (python-openstackclient + gnocchiclient) against
# `stackpilot sim` and check every answer. Usage: tests/openstack-cli.sh STACKPILOT_BIN
# Needs `openstack` on PATH (.ci/run installs it into a venv).
set -euo pipefail
BIN=${1:?usage: openstack-cli.sh path/to/stackpilot}
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
export STACKPILOT_SIM_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
"$BIN" sim --port "$PORT" --speed 60 > "$WORK/sim.log" 2>&1 &
ctl() { curl -sf -H "X-Sim-Token: $STACKPILOT_SIM_TOKEN" "$@"; }
SIM=$!
trap 'kill $SIM 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do ctl "http://127.0.0.1:$PORT/_sim/state" >/dev/null && break; sleep 0.1; done
ctl "http://127.0.0.1:$PORT/_sim/clouds.yaml" > "$WORK/clouds.yaml"
export OS_CLIENT_CONFIG_FILE="$WORK/clouds.yaml" OS_CLOUD=sim
unset OS_AUTH_URL OS_USERNAME OS_PASSWORD OS_PROJECT_NAME OS_TOKEN 2>/dev/null || true

pass=0
step() { echo "--- $*"; }
# check <python expression over `d` (the JSON output)> <command...>
check() {
  local expr=$1; shift
  local out
  out=$("$@" -f json) || { echo "FAILED: $* (exit $?)"; exit 1; }
  python3 -c "import json,sys; d=json.loads(sys.stdin.read()); assert ($expr), d" <<<"$out" \
    || { echo "FAILED check [$expr] on: $*"; echo "$out" | head -40; exit 1; }
  pass=$((pass+1))
}
# wait_for <python expr> <command...>: poll a JSON command until the check holds
wait_for() {
  local expr=$1; shift
  for _ in $(seq 1 150); do
    if out=$("$@" -f json 2>/dev/null) && python3 -c "import json,sys; d=json.loads(sys.stdin.read()); sys.exit(0 if ($expr) else 1)" <<<"$out"; then
      pass=$((pass+1)); return 0
    fi
    sleep 0.2
  done
  echo "FAILED waiting for [$expr] on: $*"; "$@" -f json || true; exit 1
}
# refuse <text the error must contain> <command...>: the command must fail
refuse() {
  local want=$1; shift
  local out
  if out=$("$@" 2>&1); then echo "FAILED: should have been refused: $*"; exit 1; fi
  grep -q -- "$want" <<<"$out" || { echo "FAILED: refusal of [$*] lacks [$want]: $out"; exit 1; }
  pass=$((pass+1))
}

step "identity"
check "len(d['id']) > 20 and d['project_id'] and d['user_id']" openstack token issue
check "{'compute','image','network','block-storage','volumev3','metric','identity'} <= {c['Type'] for c in d}" openstack catalog list

step "flavors, images, networks"
check "{'m1.tiny','m1.small','m1.medium','m1.large'} == {f['Name'] for f in d} and any(f['VCPUs'] == 2 for f in d)" openstack flavor list
check "any(i['Name'] == 'cirros-0.6.2-x86_64-disk' and i['Status'] == 'active' for i in d)" openstack image list
check "{'private','public'} <= {n['Name'] for n in d}" openstack network list

step "servers"
check "d['status'] == 'ACTIVE' and d['name'] == 'cli-1' and 'private' in str(d['addresses'])" \
  openstack server create --flavor m1.small --image cirros-0.6.2-x86_64-disk --network private \
    --property stackpilot:app=cli --user-data /dev/null --wait cli-1
check "len(d) == 1 and d[0]['Name'] == 'cli-1' and d[0]['Status'] == 'ACTIVE' and d[0]['Flavor'] == 'm1.small'" openstack server list
check "d['properties'] == {'stackpilot:app': 'cli'} and d['image'].startswith('cirros')" openstack server show cli-1
wait_for "True" openstack server show cli-1
for _ in $(seq 1 100); do openstack console log show cli-1 | grep -q "Cloud-init v. 23.4 finished" && break; sleep 0.2; done
openstack console log show cli-1 | grep -q "Cloud-init v. 23.4 finished" || { echo "FAILED: no cloud-init marker in the console log"; exit 1; }
pass=$((pass+1))
openstack server stop cli-1
wait_for "d['status'] == 'SHUTOFF'" openstack server show cli-1
openstack server start cli-1
wait_for "d['status'] == 'ACTIVE'" openstack server show cli-1
openstack server reboot --hard --wait cli-1
check "d['status'] == 'ACTIVE'" openstack server show cli-1
openstack server delete --wait cli-1
check "d == []" openstack server list
refuse "No Server found" openstack server show cli-1

step "volumes and backups"
check "d['size'] == 1 and d['name'] == 'vol-1'" openstack volume create --size 1 vol-1
wait_for "d['status'] == 'available'" openstack volume show vol-1
check "d['name'] == 'full-1'" openstack volume backup create --name full-1 vol-1
wait_for "d['status'] == 'available'" openstack volume backup show full-1
check "d['name'] == 'inc-1'" openstack volume backup create --name inc-1 --incremental vol-1
wait_for "d['status'] == 'available' and d['is_incremental']" openstack volume backup show inc-1
check "{b['Name']: b['Incremental'] for b in d} == {'full-1': False, 'inc-1': True}" openstack volume backup list
check "d['has_dependent_backups'] is True" openstack volume backup show full-1
refuse "Incremental backups exist for this backup" openstack volume backup delete full-1
check "d['volume_name'] == 'restored-1' and d['volume_id'] and d['id']" openstack volume backup restore inc-1 restored-1
wait_for "d['status'] == 'available' and d['size'] == 1" openstack volume show restored-1
openstack volume backup delete inc-1
wait_for "[b['Name'] for b in d] == ['full-1']" openstack volume backup list
openstack volume backup delete full-1
wait_for "d == []" openstack volume backup list

step "metrics"
check "d['status'] == 'ACTIVE'" openstack server create --flavor m1.tiny --image cirros-0.6.2-x86_64-disk --network private --wait cli-2
SID=$(openstack server show cli-2 -f value -c id)
ctl -X POST "http://127.0.0.1:$PORT/_sim/clock/advance" -d '{"seconds": 600}' >/dev/null
check "any(r['id'] == '$SID' and r['type'] == 'instance' for r in d)" openstack metric resource list
check "'cpu' in d['metrics'] and 'memory.usage' in d['metrics']" openstack metric resource show --type instance "$SID"
check "len(d) >= 5 and all(m['granularity'] == 60.0 and m['value'] > 0 for m in d)" \
  openstack metric measures show --resource-id "$SID" --aggregation rate:mean --granularity 60 cpu
check "len(d) >= 5 and all(0 < m['value'] <= 512 for m in d)" openstack metric measures show --resource-id "$SID" memory.usage

echo "openstack CLI against stackpilot sim: $pass checks passed"
