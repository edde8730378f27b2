#!/usr/bin/env bash
# Builds etcd, kube-apiserver and kubectl from Go modules into
# target/control-plane/bin. A binary is rebuilt only when its module files
# changed since the last build, so a warm run returns in about a second.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${CONTROL_PLANE_BIN:-$repo/target/control-plane/bin}"
mkdir -p "$out"

kubernetes_version="$(awk '/^require k8s.io\/kubernetes / { print $3 }' "$here/apiserver/go.mod")"
minor="$(echo "$kubernetes_version" | cut -d. -f2)"
version_flags="-s -w"
for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_flags+=" -X $package.gitVersion=$kubernetes_version"
  version_flags+=" -X $package.gitMajor=1 -X $package.gitMinor=$minor"
  version_flags+=" -X $package.gitTreeState=clean"
done

# shellcheck source=../lib/build-if-stale.sh
source "$here/../lib/build-if-stale.sh"

build_if_stale "$here/etcd" etcd . "-s -w"
build_if_stale "$here/apiserver" kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$version_flags"
build_if_stale "$here/apiserver" kubectl k8s.io/kubernetes/cmd/kubectl "$version_flags"
echo "$out"
