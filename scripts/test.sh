#!/usr/bin/env bash
# Runs every check and test: formatting, Clippy, unit tests, and the
# end-to-end tests against a real kube-apiserver with etcd and the MAS
# simulator. Builds the Go-based control plane and tools first (cached in
# target/ after the first run).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> building the control plane (etcd, kube-apiserver, kubectl)"
tests/control-plane/build.sh >/dev/null
if [[ -x tests/tools/build.sh ]]; then
  echo "==> building test tools"
  tests/tools/build.sh >/dev/null
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "==> cargo test"
cargo test --workspace --all-targets --no-fail-fast
