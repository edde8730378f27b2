// Package main pins the Helm command that tests/tools/build.sh builds, so
// that `go mod tidy` keeps its dependencies in go.sum.
//go:build tools

package main

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
