// Command etcd is the etcd server built from go.etcd.io/etcd/server/v3, the
// storage behind the test control plane's kube-apiserver.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
