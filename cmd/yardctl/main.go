// Command yardctl is the operators' tool over Switchyard's ZooKeeper
// store: apply a routes file, show the routes, mark zones up or down, and
// report route servers and proxies. Run "yardctl help" for the commands.
package main

import (
	"os"

	"github.com/switchyard/switchyard/internal/yardctl"
)

func main() {
	os.Exit(yardctl.Main(os.Args[1:], os.Stdout, os.Stderr))
}
