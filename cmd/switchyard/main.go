// Command switchyard runs the Switchyard server roles as subcommands: proxy,
// demo, and the control-plane companions. Run "switchyard help" for the list.
package main

import (
	"os"

	"github.com/switchyard/switchyard/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
