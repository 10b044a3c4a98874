package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// benchCerts are the files of the run's test PKI: a CA and a leaf for
// 127.0.0.1 and localhost that it signed, both ECDSA P-256, which every
// TLS target serves.
type benchCerts struct {
	ca      string // CA certificate, PEM
	cert    string // leaf certificate, PEM
	key     string // leaf private key, PEM (PKCS #8)
	certKey string // leaf certificate and key in one file (HAProxy's crt)
	pool    *x509.CertPool
}

// writeBenchCerts makes a CA and a leaf it signed into dir.
func writeBenchCerts(dir string) (*benchCerts, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "peerbench test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	c := &benchCerts{
		ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "cert.pem"),
		key: filepath.Join(dir, "key.pem"), certKey: filepath.Join(dir, "cert-key.pem"),
		pool: x509.NewCertPool(),
	}
	c.pool.AddCert(ca)
	for path, data := range map[string][]byte{c.ca: caPEM, c.cert: certPEM, c.key: keyPEM, c.certKey: append(certPEM, keyPEM...)} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// The TLS parameters every client of the run uses, so that every target
// does the same work: TLS 1.3, X25519, AES-128-GCM (which the Go servers
// pick anyway; OpenSSL clients would offer AES-256-GCM first).
const (
	benchGroup  = "X25519"
	benchSuite  = "TLS_AES_128_GCM_SHA256"
	benchMinTLS = "TLSv1.3"
)

// clientTLS is the Go clients' TLS configuration: the run's CA,
// TLS 1.3 with X25519 only.
func (c *benchCerts) clientTLS() *tls.Config {
	return &tls.Config{
		RootCAs: c.pool, MinVersion: tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.X25519},
	}
}

// writeOpenSSLConf writes an OpenSSL configuration that holds wrk and
// h2load (through OPENSSL_CONF) to the run's TLS parameters.
func writeOpenSSLConf(path string) error {
	conf := strings.Join([]string{
		"# Written by peerbench: the TLS parameters of every client of the run.",
		"openssl_conf = openssl_init",
		"[openssl_init]",
		"ssl_conf = ssl_sect",
		"[ssl_sect]",
		"system_default = system_default_sect",
		"[system_default_sect]",
		"MinProtocol = " + benchMinTLS,
		"Groups = " + benchGroup,
		"Ciphersuites = " + benchSuite,
		"",
	}, "\n")
	return os.WriteFile(path, []byte(conf), 0o644)
}

// handshakeResult is what a run of the handshake generator saw.
type handshakeResult struct {
	requests int64 // answered 200
	resumed  int64 // of those, on a resumed session
	errors   int64 // connection, TLS, read errors and other statuses
	firstErr string
	rps      float64
}

// runHandshakes sends GET requests with "Connection: close" to addr over
// TLS from conns goroutines for d: each on a new connection, so each
// request is one handshake. With resume the goroutines share a session
// cache and resume with its tickets; without, every handshake is a full
// one. The client skips verifying the certificate (the servers' work is
// the same either way, and it keeps the generator's own work per
// handshake low: it shares its CPU with the backend).
func runHandshakes(ctx context.Context, addr, path, key string, conns int, d time.Duration, resume bool) handshakeResult {
	cfg := &tls.Config{
		InsecureSkipVerify: true, MinVersion: tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.X25519},
		NextProtos:       []string{"http/1.1"},
	}
	if resume {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4 * conns)
	}
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\n" + keyHeader + ": " + key + "\r\nConnection: close\r\n\r\n")
	var (
		res      handshakeResult
		requests atomic.Int64
		resumed  atomic.Int64
		errs     atomic.Int64
		errOnce  sync.Once
	)
	fail := func(err error) {
		errs.Add(1)
		errOnce.Do(func() { res.firstErr = err.Error() })
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			buf := bufio.NewReaderSize(nil, 4096)
			for ctx.Err() == nil {
				ok, res, err := handshakeOnce(ctx, addr, cfg, req, buf)
				switch {
				case ctx.Err() != nil:
					return
				case err != nil:
					fail(err)
				case !ok:
					fail(fmt.Errorf("status line %q", res))
				default:
					requests.Add(1)
					if res == "resumed" {
						resumed.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	res.requests, res.resumed, res.errors = requests.Load(), resumed.Load(), errs.Load()
	res.rps = float64(res.requests) / time.Since(start).Seconds()
	return res
}

// handshakeOnce makes one connection and one request on it. It returns
// whether the response was a 200, and "resumed" when the session was
// (else the status line when it was not a 200).
func handshakeOnce(ctx context.Context, addr string, cfg *tls.Config, req []byte, br *bufio.Reader) (bool, string, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, "", err
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(5 * time.Second))
	c := tls.Client(raw, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		return false, "", err
	}
	if _, err := c.Write(req); err != nil {
		return false, "", err
	}
	br.Reset(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return false, "", err
	}
	if !strings.HasPrefix(line, "HTTP/1.1 200 ") {
		return false, strings.TrimSpace(line), nil
	}
	// To the end: the server closes after the response; the session
	// ticket came with it, before the first response byte of TLS 1.3.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return false, "", err
	}
	if c.ConnectionState().DidResume {
		return true, "resumed", nil
	}
	return true, "", nil
}
