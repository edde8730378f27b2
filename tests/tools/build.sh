#!/usr/bin/env bash
# Builds the command line tools that the deployment tests use (Helm) from Go
# modules into target/tools/bin. A tool is rebuilt only when its module files
# changed since the last build, so a warm run returns at once.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${TOOLS_BIN:-$repo/target/tools/bin}"
mkdir -p "$out"

# shellcheck source=../lib/build-if-stale.sh
source "$here/../lib/build-if-stale.sh"

# Helm's Makefile stamps its version and the Kubernetes version of its
# client-go (v0.X.Y is Kubernetes 1.X), which `helm template` and `helm lint`
# assume when no cluster is given. Without it they assume 1.20.
helm_version="$(awk '/^require helm.sh\/helm\/v3 / { print $3 }' "$here/helm/go.mod")"
client_go_minor="$(awk '$1 == "k8s.io/client-go" { print $2 }' "$here/helm/go.mod" | cut -d. -f2)"
helm_flags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
for package in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_flags+=" -X $package.k8sVersionMajor=1 -X $package.k8sVersionMinor=$client_go_minor"
done
build_if_stale "$here/helm" helm helm.sh/helm/v3/cmd/helm "$helm_flags"
echo "$out"
