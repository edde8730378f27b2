#!/usr/bin/env bash
# Resets the same N users against the MAS simulator three ways and records
# the figures in docs/benchmarks.md:
#   1. newman (Postman's CLI) with a collection and CSV data file as IBM's
#      bulk reset procedure builds them, one request after the other as the
#      Collection Runner sends them;
#   2. a parallel shell loop, `xargs -P 32 curl`;
#   3. the operator end to end on a local control plane, at concurrency 32,
#      and again paced with requestsPerSecond.
# A direct load run with `curl --parallel` measures what the simulator
# itself delivers at the same concurrency (its floor) and with no latency
# (its capacity). The full run also resets 100,000 users with the operator
# to measure its peak memory.
#
# Usage: bench/run.sh [--quick]
#   --quick  1,000 users only, about 4 minutes once built.
# Without it the script does 1,000 and 10,000 users and the 100,000-user
# operator run, which takes about 12 minutes, most of it newman.
#
# Everything listens on 127.0.0.1 and stops when the script exits.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
command_line="bench/run.sh${*:+ $*}"

quick=0
for argument in "$@"; do
  case "$argument" in
    --quick) quick=1 ;;
    *) echo "unknown option $argument; the only option is --quick" >&2; exit 2 ;;
  esac
done

# Fixed settings of every run.
latency_ms=20
concurrency=32
paced_rate=200
if [[ "$quick" == 1 ]]; then
  sizes=(1000)
  section=quick
else
  sizes=(1000 10000)
  section=full
fi
large_run=100000

work="$(mktemp -d "${TMPDIR:-/tmp}/mas-reset-bench.XXXXXX")"
results="$work/results.jsonl"
started_at=$SECONDS
# shellcheck source=../scripts/lib/processes.sh
source "$repo/scripts/lib/processes.sh"

cleanup() {
  stop_processes
  if [[ "${KEEP_BENCH_DIR:-}" == "1" ]]; then
    echo "bench files kept in $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# forget_pid PID: drops PID from the cleanup list after it was stopped.
forget_pid() {
  local kept=() pid
  for pid in "${pids[@]}"; do
    [[ "$pid" == "$1" ]] || kept+=("$pid")
  done
  pids=("${kept[@]}")
}

now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 3))" "$1" "$2"; }

step "Building the release binaries and the control plane"
bin="$(tests/control-plane/build.sh)"
kubectl="$bin/kubectl"
cargo build --quiet --release --bin mas-reset-operator --bin mas-simulator -p mas-reset-operator
cargo build --quiet --release -p mas-reset-harness --bin local-control-plane
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"

step "Installing newman from bench/package-lock.json"
if [[ ! -x bench/node_modules/.bin/newman ]]; then
  npm ci --prefix bench --no-audit --no-fund >"$work/npm.log" 2>&1 || { cat "$work/npm.log" >&2; exit 1; }
fi
newman="bench/node_modules/.bin/newman"
"$newman" --version

token="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s' "$token" >"$work/token"
chmod 600 "$work/token"

# start_simulator N [LATENCY_MS]: starts a fresh simulator with users
# user-00001..N and sets simulator_pid and simulator_url.
start_simulator() {
  local users="$1" latency="${2:-$latency_ms}" log="$work/simulator-$RANDOM.log"
  "$target/mas-simulator" --listen 127.0.0.1:0 --generate-users "$users" --prefix user \
    --token "$token" --latency-ms "$latency" >"$log" 2>&1 &
  simulator_pid=$!
  pids+=("$simulator_pid")
  simulator_url="$(wait_for_line "$log" '^listening on ' | sed 's/^listening on //')"
}

stop_simulator() {
  kill "$simulator_pid" 2>/dev/null || true
  wait "$simulator_pid" 2>/dev/null || true
  forget_pid "$simulator_pid"
}

# ledger_stats FILE: summarizes the simulator's ledger as JSON.
ledger_stats() {
  curl -sS --fail "$simulator_url/_sim/ledger" >"$1"
  python3 bench/ledger_stats.py "$1"
}

# user_csv N FILE: the data file of the IBM procedure, header `userid`.
user_csv() {
  python3 - "$1" "$2" <<'PY'
import sys
count, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w", encoding="utf-8") as out:
    out.write("userid\n")
    for number in range(1, count + 1):
        out.write(f"user-{number:05}\n")
PY
}

# record JSON: appends one measured run to the results, and warns when the
# simulator changed fewer passwords than the run has users.
record() {
  printf '%s\n' "$1" >>"$results"
  python3 -c '
import json, sys
run = json.loads(sys.argv[1])
if run["ledger"]["applied"] != run["users"]:
    print("WARNING:", run["tool"], "changed", run["ledger"]["applied"], "of", run["users"], "passwords", file=sys.stderr)
' "$1"
}

step "Writing the Postman collection and environment"
# The request as IBM's procedure builds it in Postman: POST to
# /v3/users/{{userid}}/password?emailPassword=true with the x-access-token
# header and the JSON body {}; the Collection Runner takes userid from the CSV.
cat >"$work/collection.json" <<'JSON'
{
  "info": {
    "name": "MAS bulk password reset",
    "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
  },
  "item": [
    {
      "name": "Reset password",
      "request": {
        "method": "POST",
        "header": [{ "key": "x-access-token", "value": "{{token}}" }],
        "body": { "mode": "raw", "raw": "{}", "options": { "raw": { "language": "json" } } },
        "url": "{{baseUrl}}/v3/users/{{userid}}/password?emailPassword=true"
      }
    }
  ]
}
JSON

run_newman() {
  local users="$1" csv="$work/users-$1.csv"
  start_simulator "$users"
  python3 - "$simulator_url" "$work/token" "$work/environment.json" <<'PY'
import json, sys
url, token_path, out = sys.argv[1:4]
with open(token_path, encoding="utf-8") as token_file:
    token = token_file.read()
values = [{"key": "baseUrl", "value": url}, {"key": "token", "value": token}]
with open(out, "w", encoding="utf-8") as environment:
    json.dump({"name": "bench", "values": values}, environment)
PY
  chmod 600 "$work/environment.json"

  local start end
  start="$(now)"
  timeout 1800 "$newman" run "$work/collection.json" -e "$work/environment.json" -d "$csv" \
    >"$work/newman-$users.log" 2>&1 || { tail -n 30 "$work/newman-$users.log" >&2; return 1; }
  end="$(now)"
  local ledger
  ledger="$(ledger_stats "$work/ledger-newman-$users.json")"
  stop_simulator
  record "{\"tool\": \"newman\", \"users\": $users, \"concurrency\": 1, \"wall_s\": $(elapsed "$start" "$end"), \"ledger\": $ledger}"
}

run_curl() {
  local users="$1" csv="$work/users-$1.csv"
  start_simulator "$users"
  printf 'x-access-token: %s\nContent-Type: application/json\n' "$token" >"$work/headers"
  chmod 600 "$work/headers"

  local start end
  start="$(now)"
  # xargs replaces USER_ID in every argument; `-I{}` would also rewrite the
  # body `{}`.
  tail -n +2 "$csv" | timeout 1800 xargs -P "$concurrency" -I USER_ID \
    curl -sS -o /dev/null -w '%{http_code}\n' -X POST -H @"$work/headers" --data '{}' \
    "$simulator_url/v3/users/USER_ID/password?emailPassword=true" >"$work/curl-$users.log"
  end="$(now)"
  local ledger
  ledger="$(ledger_stats "$work/ledger-curl-$users.json")"
  stop_simulator
  record "{\"tool\": \"xargs -P $concurrency curl\", \"users\": $users, \"concurrency\": $concurrency, \"wall_s\": $(elapsed "$start" "$end"), \"ledger\": $ledger}"
}

# run_direct_load N LATENCY_MS: the simulator alone under `curl --parallel`,
# which keeps its connections open, at the operator's concurrency.
run_direct_load() {
  local users="$1" latency="$2" csv="$work/users-$1.csv"
  start_simulator "$users" "$latency"
  printf 'x-access-token: %s\nContent-Type: application/json\n' "$token" >"$work/headers"
  chmod 600 "$work/headers"
  tail -n +2 "$csv" | sed "s|.*|url = \"$simulator_url/v3/users/&/password?emailPassword=true\"\noutput = \"/dev/null\"|" \
    >"$work/direct-$users.cfg"

  local start end
  start="$(now)"
  timeout 600 curl -sS --no-progress-meter --parallel --parallel-max "$concurrency" -X POST \
    -H @"$work/headers" --data '{}' -K "$work/direct-$users.cfg"
  end="$(now)"
  local ledger
  ledger="$(ledger_stats "$work/ledger-direct-$users-$latency.json")"
  stop_simulator
  record "{\"tool\": \"curl --parallel $concurrency, latency $latency ms\", \"users\": $users, \"concurrency\": $concurrency, \"latency_ms\": $latency, \"wall_s\": $(elapsed "$start" "$end"), \"ledger\": $ledger}"
}

# write_requests: write requests kube-apiserver served so far (all verbs
# that change state, server-side apply included).
write_requests() {
  "$kubectl" get --raw /metrics | python3 -c '
import re, sys
verbs = {"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"}
total = 0
for line in sys.stdin:
    if line.startswith("apiserver_request_total{"):
        labels, value = line.rsplit(" ", 1)
        verb = re.search(r"verb=\"([A-Z]+)\"", labels)
        if verb and verb.group(1) in verbs:
            total += int(float(value))
print(total)'
}

# process_figures PID: CPU seconds (utime + stime) and peak RSS in KiB.
process_figures() {
  local pid="$1" ticks
  ticks="$(getconf CLK_TCK)"
  local cpu rss
  cpu="$(awk -v ticks="$ticks" '{ sub(/^.*\) /, ""); print ($12 + $13) / ticks }' "/proc/$pid/stat")"
  rss="$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")"
  echo "$cpu $rss"
}

# run_operator N LABEL RATE: one operator process, one BulkPasswordReset.
# RATE is empty for no requestsPerSecond.
run_operator() {
  local users="$1" label="$2" rate="$3" csv="$work/users-$1.csv"
  local namespace="bench-$label-$users" name="reset"
  start_simulator "$users"

  "$kubectl" create namespace "$namespace" >/dev/null
  # A ConfigMap stores at most 1 MiB, so the list goes in parts of 50,000
  # users, each with its own header row.
  local sources="" part=0
  python3 - "$csv" "$work/parts-$label-$users" <<'PY'
import os, sys
source, out_dir = sys.argv[1:3]
os.makedirs(out_dir, exist_ok=True)
with open(source, encoding="utf-8") as csv_file:
    header, *rows = csv_file.read().splitlines()
for part, start in enumerate(range(0, len(rows), 50_000), 1):
    with open(os.path.join(out_dir, f"part-{part}.csv"), "w", encoding="utf-8") as out:
        out.write("\n".join([header, *rows[start:start + 50_000]]) + "\n")
PY
  for file in "$work/parts-$label-$users"/part-*.csv; do
    part=$((part + 1))
    "$kubectl" -n "$namespace" create configmap "users-$part" --from-file="users.csv=$file" >/dev/null
    sources+="      - configMapName: users-$part
        key: users.csv
"
  done
  "$kubectl" -n "$namespace" create secret generic mas-credentials --from-file=token="$work/token" >/dev/null

  local log="$work/operator-$label-$users.log"
  "$target/mas-reset-operator" run --namespace "$namespace" --metrics-address 127.0.0.1:0 >"$log" 2>&1 &
  local operator_pid=$!
  pids+=("$operator_pid")
  wait_for_line "$log" 'controller starting' >/dev/null

  local writes_before start end
  writes_before="$(write_requests)"
  "$kubectl" -n "$namespace" apply --server-side -f - >/dev/null <<YAML
apiVersion: masreset.dev/v1alpha1
kind: BulkPasswordReset
metadata:
  name: $name
spec:
  masApiUrl: $simulator_url
  allowInsecureHttp: true
  credentials:
    secretName: mas-credentials
    tokenKey: token
  userList:
    sources:
$sources  concurrency: $concurrency
${rate:+  requestsPerSecond: $rate}
YAML
  start="$(now)"
  if ! "$kubectl" -n "$namespace" wait --for=jsonpath='{.status.phase}'=Succeeded \
    "bulkpasswordreset/$name" --timeout=1200s >/dev/null; then
    "$kubectl" -n "$namespace" get bulkpasswordreset "$name" -o yaml >&2
    tail -n 30 "$log" >&2
    return 1
  fi
  end="$(now)"
  local figures cpu rss
  figures="$(process_figures "$operator_pid")"
  read -r cpu rss <<<"$figures"
  # The final Event follows the final status write.
  sleep 1
  local writes_after
  writes_after="$(write_requests)"
  kill -TERM "$operator_pid"
  wait "$operator_pid" 2>/dev/null || true
  forget_pid "$operator_pid"

  local ledger
  ledger="$(ledger_stats "$work/ledger-operator-$label-$users.json")"
  stop_simulator
  local tool="operator"
  [[ -n "$rate" ]] && tool="operator, paced"
  # The writes include the script's own apply of the resource.
  record "{\"tool\": \"$tool\", \"users\": $users, \"concurrency\": $concurrency, \"rate\": ${rate:-null}, \"wall_s\": $(elapsed "$start" "$end"), \"cpu_s\": $cpu, \"peak_rss_kib\": $rss, \"writes\": $((writes_after - writes_before)), \"ledger\": $ledger}"
}

step "Starting the local control plane"
"$target/local-control-plane" up --dir "$work/cluster" >"$work/control-plane.log" 2>&1 &
pids+=($!)
wait_for_line "$work/control-plane.log" '^kubeconfig: ' >/dev/null
export KUBECONFIG="$work/cluster/kubeconfig"
"$kubectl" apply --server-side -f crds/ >/dev/null
"$kubectl" wait --for condition=established --timeout=60s crd/bulkpasswordresets.masreset.dev >/dev/null

all_sizes=("${sizes[@]}")
[[ "$quick" == 0 ]] && all_sizes+=("$large_run")
for users in "${all_sizes[@]}"; do
  user_csv "$users" "$work/users-$users.csv"
done

for users in "${sizes[@]}"; do
  step "$users users: newman, sequential"
  run_newman "$users"
  tail -n 1 "$results"

  step "$users users: xargs -P $concurrency curl"
  run_curl "$users"
  tail -n 1 "$results"

  step "$users users: simulator alone, curl --parallel $concurrency (latency $latency_ms ms and 0 ms)"
  run_direct_load "$users" "$latency_ms"
  tail -n 1 "$results"
  run_direct_load "$users" 0
  tail -n 1 "$results"

  step "$users users: operator, concurrency $concurrency"
  run_operator "$users" c32 ""
  tail -n 1 "$results"

  step "$users users: operator, concurrency $concurrency, requestsPerSecond $paced_rate"
  run_operator "$users" paced "$paced_rate"
  tail -n 1 "$results"
done

if [[ "$quick" == 0 ]]; then
  step "$large_run users: operator, concurrency $concurrency (peak memory)"
  run_operator "$large_run" c32 ""
  tail -n 1 "$results"
fi

step "Writing docs/benchmarks.md"
python3 bench/report.py "$results" docs/benchmarks.md "$section" "$command_line" "$latency_ms" "$((SECONDS - started_at))"
sed -n "/<!-- bench:$section:begin -->/,/<!-- bench:$section:end -->/p" docs/benchmarks.md
