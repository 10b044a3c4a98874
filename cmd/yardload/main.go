// Command yardload sends HTTP load to a target and reports throughput,
// status and error counts, and latency percentiles. Run "yardload --help"
// for its flags.
package main

import (
	"os"

	"github.com/switchyard/switchyard/internal/yardload"
)

func main() {
	os.Exit(yardload.Main(os.Args[1:], os.Stdout, os.Stderr))
}
