#!/usr/bin/env bash
# Runs the main job on a local default: a local control plane (etcd and
# kube-apiserver), the MAS simulator with TLS, the operator, and a sample
# BulkPasswordReset whose per-user results are printed at the end.
#
# Everything listens on 127.0.0.1 and stops when the script exits.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
work="$(mktemp -d "${TMPDIR:-/tmp}/mas-reset-demo.XXXXXX")"
# shellcheck source=lib/processes.sh
source "$repo/scripts/lib/processes.sh"

cleanup() {
  stop_processes
  if [[ "${KEEP_DEMO_DIR:-}" == "1" ]]; then
    echo "demo files kept in $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

step "Building etcd, kube-apiserver and kubectl from Go modules (cached after the first run)"
bin="$(tests/control-plane/build.sh)"
kubectl="$bin/kubectl"

step "Building the operator, the MAS simulator and the control-plane launcher"
cargo build --quiet --bin mas-reset-operator --bin mas-simulator -p mas-reset-operator
cargo build --quiet -p mas-reset-harness --bin local-control-plane
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug"

step "Starting the local control plane"
"$target/local-control-plane" up --dir "$work/cluster" >"$work/control-plane.log" 2>&1 &
pids+=($!)
wait_for_line "$work/control-plane.log" '^kubeconfig: ' >/dev/null
export KUBECONFIG="$work/cluster/kubeconfig"
"$kubectl" version 2>/dev/null | grep "^Server Version"

step "Starting the MAS simulator (TLS with its own CA, 20 ms latency)"
token="demo-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
{
  echo "id,local,email,active"
  for user in alice bob carol 0987456 'jo#1' jörg ops/admin; do
    echo "$user,true,$(echo "$user" | tr -cd 'a-z0-9')@example.com,true"
  done
} >"$work/mas-users.csv"
"$target/mas-simulator" --listen 127.0.0.1:0 --tls --ca-out "$work/mas-ca.crt" \
  --users-file "$work/mas-users.csv" --token "$token" --latency-ms 20 >"$work/simulator.log" 2>&1 &
pids+=($!)
mas_url="$(wait_for_line "$work/simulator.log" '^listening on ' | sed 's/^listening on //')"
echo "MAS API simulator: $mas_url"

step "Installing the CRD"
"$kubectl" apply --server-side -f crds/ >/dev/null
"$kubectl" wait --for condition=established --timeout=60s crd/bulkpasswordresets.masreset.dev >/dev/null

step "Creating the sample inputs in namespace mas-demo"
"$kubectl" create namespace mas-demo >/dev/null
# An Excel "CSV UTF-8" export: byte-order mark, CRLF, and two users MAS does not know.
printf '\xef\xbb\xbfuserid\r\nalice\r\nbob\r\ncarol\r\n0987456\r\njo#1\r\nj\xc3\xb6rg\r\nops/admin\r\nnobody\r\n\r\nbob\r\nghost\r\n' >"$work/users.csv"
"$kubectl" -n mas-demo create configmap users --from-file=users.csv="$work/users.csv" >/dev/null
"$kubectl" -n mas-demo create configmap mas-ca --from-file=ca.crt="$work/mas-ca.crt" >/dev/null
"$kubectl" -n mas-demo create secret generic mas-credentials --from-literal=token="$token" >/dev/null
"$kubectl" -n mas-demo apply --server-side -f - >/dev/null <<YAML
apiVersion: masreset.dev/v1alpha1
kind: BulkPasswordReset
metadata:
  name: demo
spec:
  masApiUrl: $mas_url
  credentials:
    secretName: mas-credentials
    tokenKey: token
  userList:
    sources:
      - configMapName: users
        key: users.csv
  tls:
    caBundle:
      configMapName: mas-ca
      key: ca.crt
  concurrency: 4
YAML

step "Running the operator until the run finishes"
"$target/mas-reset-operator" run --namespace mas-demo --metrics-address 127.0.0.1:0 >"$work/operator.log" 2>&1 &
pids+=($!)
phase=""
for _ in $(seq 1 300); do
  phase="$("$kubectl" -n mas-demo get bulkpasswordreset demo -o jsonpath='{.status.phase}' 2>/dev/null || true)"
  case "$phase" in
    Succeeded|PartiallyFailed|Failed) break ;;
  esac
  sleep 0.5
done
if [[ ! "$phase" =~ ^(Succeeded|PartiallyFailed|Failed)$ ]]; then
  echo "the run did not finish; operator log:" >&2
  tail -n 40 "$work/operator.log" >&2
  exit 1
fi

step "kubectl get bulkpasswordresets"
"$kubectl" -n mas-demo get bulkpasswordresets

step "Per-user results"
"$target/mas-reset-operator" results demo -n mas-demo
