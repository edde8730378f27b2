# Helpers for scripts that start background processes and wait for them.
# Source it; it defines `pids`, `stop_processes`, `step` and `wait_for_line`.

# Process ids started by the script, stopped by `stop_processes`.
pids=()

# stop_processes: sends SIGTERM to every process in `pids` and waits for them.
stop_processes() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}

step() { printf '\n==> %s\n' "$*"; }

# wait_for_line FILE PATTERN: waits up to 120 s for a line matching PATTERN
# and prints the first such line.
wait_for_line() {
  local file="$1" pattern="$2"
  for _ in $(seq 1 600); do
    if grep -q "$pattern" "$file" 2>/dev/null; then
      grep -m1 "$pattern" "$file"
      return 0
    fi
    sleep 0.2
  done
  echo "timed out waiting for '$pattern' in $file:" >&2
  tail -n 30 "$file" >&2
  return 1
}
