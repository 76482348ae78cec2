#!/usr/bin/env bash
# Make the real services look like a cloud other people use, before the
# conformance suite runs: another team's flat network holds physnet1, and the
# Gnocchi `instance` resource type is Ceilometer's (more attributes, some
# required). What exists already is left alone; the script fails when the cloud
# does not end up in that state, so the suite never silently runs on a fresh one.
# Usage: tests/used-cloud.sh   (openstack and gnocchi on PATH; OS_* or the
# defaults of the real services: admin/secret on http://127.0.0.1:5000/v3)
set -euo pipefail
export OS_AUTH_URL=${OS_AUTH_URL:-http://127.0.0.1:5000/v3} OS_USERNAME=${OS_USERNAME:-admin}
export OS_PASSWORD=${OS_PASSWORD:-secret} OS_PROJECT_NAME=${OS_PROJECT_NAME:-admin}
export OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_IDENTITY_API_VERSION=3
export OS_REGION_NAME=${OS_REGION_NAME:-RegionOne}

flat_networks() { openstack network list --long -f value -c "Network Type" | grep -c '^flat$' || true; }
if [ "$(flat_networks)" = 0 ]; then
  openstack network create --share --provider-network-type flat --provider-physical-network physnet1 \
    another-team-flat >/dev/null
  echo "used cloud: another-team-flat holds physnet1"
else
  echo "used cloud: physnet1's flat network exists already"
fi

if ! gnocchi resource-type show instance >/dev/null 2>&1; then
  # Ceilometer's definition: host, display_name, flavor_id and image_ref are required.
  gnocchi resource-type create instance \
    -a host:string:true:max_length=255 -a image_ref:string:true:max_length=255 \
    -a display_name:string:true:max_length=255 -a flavor_id:string:true:max_length=255 \
    -a server_group:string:false:max_length=255 -a flavor_name:string:false:max_length=255 >/dev/null
  echo "used cloud: the Gnocchi instance type is Ceilometer's"
else
  echo "used cloud: the Gnocchi instance type exists already"
fi

# The state the suite must cope with.
[ "$(flat_networks)" -ge 1 ] || { echo "used cloud: no flat network holds physnet1" >&2; exit 1; }
gnocchi resource-type show instance -f value -c name >/dev/null || { echo "used cloud: no instance type" >&2; exit 1; }
