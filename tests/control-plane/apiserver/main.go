// Package main is a placeholder so that `go mod tidy` keeps the commands this
// module builds: kube-apiserver and kubectl, both from k8s.io/kubernetes.
//go:build tools

package main

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
