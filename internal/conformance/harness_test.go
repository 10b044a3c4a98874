package conformance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/freeport"
	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/proxy"
	"github.com/switchyard/switchyard/proxy/accesslog"
	"github.com/switchyard/switchyard/routes"
)

// The deployment every shape is sent to: alias app, kind es, reached
// through Host app.es.example.test; one instance.
const (
	testHost     = "app.es.example.test"
	testDomain   = "example.test"
	testDepID    = "7f3a9c2e51d04b8e9a6c3d2f1e0b4a57"
	testInstance = "i-0001"
)

// server is a proxy under test, listening on addr.
type server struct {
	addr string
	stop func() error
}

// startSwitchyard runs Switchyard in-process on a loopback port, routing
// the test deployment to the instance at instAddr.
func startSwitchyard(instAddr string) (*server, error) {
	tbl, err := routes.NewTable(testDomain, nil, []*routes.DeploymentSpec{{
		ID:      testDepID,
		Kind:    "es",
		Aliases: []string{"app"},
		Serving: map[string]int{"blue": 100},
		Instances: []*routes.Instance{
			{ID: testInstance, Addr: instAddr, Zone: "zone-a", Generation: "blue"},
		},
	}})
	if err != nil {
		return nil, err
	}
	tbl.Version, tbl.Source, tbl.LoadedAt = 1, "conformance", time.Now()
	s, err := proxy.New(proxy.Config{
		Listen:                "127.0.0.1:0",
		AdminListen:           "-",
		ClientHeaderTimeout:   2 * time.Second,
		ClientIdleTimeout:     5 * time.Second,
		ConnectTimeout:        5 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		UpstreamIdleTimeout:   10 * time.Second,
		DrainDelay:            time.Millisecond,
		ShutdownTimeout:       time.Second,
		AccessLog:             accesslog.Config{Off: true},
		Logger:                slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, err
	}
	s.Apply(tbl)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("switchyard did not start: %w", err)
	case <-time.After(5 * time.Second):
		cancel()
		return nil, errors.New("switchyard did not start in 5s")
	}
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("switchyard did not stop in 10s")
		}
	}
	return &server{addr: s.Addr().String(), stop: stop}, nil
}

// haproxyBinary returns the HAProxy to compare with: haproxy on PATH, else
// /usr/sbin/haproxy. Without one it returns "", or fails the test when
// SWITCHYARD_REQUIRE_HAPROXY is set (CI, where install-test-deps.sh
// installed it).
func haproxyBinary(tb testing.TB) string {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy"
	}
	if os.Getenv("SWITCHYARD_REQUIRE_HAPROXY") != "" {
		tb.Fatal("no haproxy binary, and SWITCHYARD_REQUIRE_HAPROXY is set; run scripts/install-test-deps.sh")
	}
	return ""
}

// haproxyVersion returns "HAProxy 2.6.12" or the like.
func haproxyVersion(bin string) string {
	out, err := exec.Command(bin, "-v").Output()
	if err != nil {
		return "HAProxy"
	}
	f := strings.Fields(string(out))
	if len(f) >= 3 {
		return "HAProxy " + strings.SplitN(f[2], "-", 2)[0]
	}
	return "HAProxy"
}

// haproxyConfig is the reference configuration: plain HTTP mode, backend
// connections shared between clients (http-reuse always, as Switchyard's
// pool does), X-Forwarded-For added.
const haproxyConfig = `global
    maxconn 200

defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
    timeout http-request 2s
    timeout http-keep-alive 2s
    http-reuse always
    option forwardfor

frontend conformance
    bind %s
    default_backend instance

backend instance
    server instance %s
`

// startHAProxy runs bin on a free loopback port with haproxyConfig
// written to dir, in front of the instance at instAddr.
func startHAProxy(bin, dir, instAddr string) (*server, error) {
	ln, err := freeport.Listen()
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, haproxyConfig, addr, instAddr), 0o644); err != nil {
		return nil, err
	}
	var stderr testutil.Buffer
	cmd := exec.Command(bin, "-db", "-f", cfg)
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		return nil
	}
	for deadline := time.Now().Add(15 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return &server{addr: addr, stop: stop}, nil
		}
		select {
		case err := <-exited:
			exited <- err
			return nil, fmt.Errorf("haproxy exited: %v: %s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("haproxy not listening on %s in 15s: %s", addr, stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
