package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/demo"
	"github.com/switchyard/switchyard/internal/cmdline"
)

// The environment an allocator gives an instance (docs/allocator.md).
const (
	envInstanceID = "SWITCHYARD_INSTANCE_ID"
	envDeployment = "SWITCHYARD_DEPLOYMENT"
	envKind       = "SWITCHYARD_KIND"
	envGeneration = "SWITCHYARD_GENERATION"
	envZone       = "SWITCHYARD_ZONE"
	envHost       = "SWITCHYARD_HOST"
	envPort       = "SWITCHYARD_PORT"
	envMemory     = "SWITCHYARD_MEMORY_BYTES"
	envSpec       = "SWITCHYARD_INSTANCE_SPEC"
)

// instanceSpec is what the built-in instance reads from its spec.
type instanceSpec struct {
	// Version is shown in its health answer.
	Version string `json:"version"`
	// BallastBytes is memory the instance takes and touches when it
	// starts, as a real instance's heap would be.
	BallastBytes int64 `json:"ballast_bytes"`
}

func instanceUsage(w io.Writer) {
	fmt.Fprint(w, `usage: switchyard instance

The built-in instance program that an allocator runs for a kind it has no
command for. It reads what it is from its environment (SWITCHYARD_INSTANCE_ID,
SWITCHYARD_DEPLOYMENT, SWITCHYARD_KIND, SWITCHYARD_GENERATION, SWITCHYARD_ZONE,
SWITCHYARD_HOST, SWITCHYARD_PORT, SWITCHYARD_MEMORY_BYTES,
SWITCHYARD_INSTANCE_SPEC) and answers as the demo instances do: a JSON
description of itself and the request, or the request's body echoed. GET
/_health answers 200. SIGTERM stops it after its requests end.
`)
}

// ballast holds the instance's ballast, so that it stays allocated.
var ballast []byte

func runInstance(args []string, _, stderr io.Writer) error {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" {
			return flag.ErrHelp
		}
		return cmdline.Usagef("unexpected argument %q", args[0])
	}
	get := os.Getenv
	id := get(envInstanceID)
	port, err := strconv.Atoi(get(envPort))
	if id == "" || err != nil || port < 1 || port > 65535 {
		return cmdline.Usagef("%s and %s must be set (the allocator sets them)", envInstanceID, envPort)
	}
	var spec instanceSpec
	if s := get(envSpec); s != "" {
		if err := json.Unmarshal([]byte(s), &spec); err != nil {
			return cmdline.Usagef("%s: %v", envSpec, err)
		}
	}
	log := newLogger(stderr, slog.LevelInfo).With("instance", id)
	if spec.BallastBytes > 0 {
		ballast = make([]byte, spec.BallastBytes)
		for i := 0; i < len(ballast); i += 4096 {
			ballast[i] = 1 // touched: resident, charged to the cgroup
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(cmpOr(get(envHost), "127.0.0.1"), strconv.Itoa(port)))
	if err != nil {
		return err
	}
	h := demo.NewInstance(get(envDeployment), get(envKind), get(envGeneration), id, get(envZone))
	health, _ := json.Marshal(map[string]any{"ok": true, "instance": id, "version": spec.Version})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(health, '\n'))
	})
	mux.Handle("/", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := cmdline.SignalContext()
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("instance serving", "addr", ln.Addr().String(), "deployment", get(envDeployment), "generation", get(envGeneration))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
