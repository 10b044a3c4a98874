package tlscert

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/proxy/tlscert/tlstest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// servedName is the first DNS name of the certificate the store serves
// for a hello naming sni; "" when it fails.
func servedName(t *testing.T, s *Store, sni string) string {
	t.Helper()
	c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: sni})
	if err != nil {
		if !errors.Is(err, ErrNoCertificate) {
			t.Errorf("SNI %q: %v; want ErrNoCertificate", sni, err)
		}
		return ""
	}
	return c.Leaf.DNSNames[0]
}

func TestSNIChoice(t *testing.T) {
	ca := tlstest.NewCA(t)
	later := time.Now().Add(time.Hour)
	dir := t.TempDir()
	ca.Leaf(t, later, "api.example.test").Write(t, dir, "api")
	ca.Leaf(t, later, "*.example.test").Write(t, dir, "wildcard")
	ca.Leaf(t, later, "Other.Test").Write(t, dir, "other")
	os.WriteFile(filepath.Join(dir, "README"), []byte("not a pair"), 0o644)

	noDefault, err := New(Config{Dir: dir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := ca.Leaf(t, later, "default.test").Write(t, t.TempDir(), "x")
	withDefault, err := New(Config{Dir: dir, CertFile: certFile, KeyFile: keyFile, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sni, want, wantNoDefault string
	}{
		{"api.example.test", "api.example.test", "api.example.test"},
		{"API.Example.Test.", "api.example.test", "api.example.test"},
		{"kb.example.test", "*.example.test", "*.example.test"},
		{"other.test", "Other.Test", "Other.Test"},
		{"a.b.example.test", "default.test", ""}, // a wildcard covers one label
		{"example.test", "default.test", ""},
		{"unknown.test", "default.test", ""},
		{"", "default.test", ""}, // no SNI
	} {
		if got := servedName(t, withDefault, tc.sni); got != tc.want {
			t.Errorf("SNI %q: served %q; want %q", tc.sni, got, tc.want)
		}
		if got := servedName(t, noDefault, tc.sni); got != tc.wantNoDefault {
			t.Errorf("SNI %q without a default: served %q; want %q", tc.sni, got, tc.wantNoDefault)
		}
	}
	// default.crt in the directory is the default, too.
	ca.Leaf(t, later, "dir-default.test").Write(t, dir, DefaultName)
	s, err := New(Config{Dir: dir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if got := servedName(t, s, ""); got != "dir-default.test" {
		t.Errorf("no SNI with default.crt in the directory: served %q; want dir-default.test", got)
	}
	if _, err := New(Config{Dir: dir, CertFile: certFile, KeyFile: keyFile, Logger: quiet()}); err == nil {
		t.Error("default.crt and a certificate file: no error; want one (two defaults)")
	}
}

func TestNewRefusesBadPairs(t *testing.T) {
	ca := tlstest.NewCA(t)
	later := time.Now().Add(time.Hour)
	a, b := ca.Leaf(t, later, "a.test"), ca.Leaf(t, later, "b.test")
	dir := t.TempDir()
	for _, tc := range []struct {
		name      string
		cert, key []byte
		want      string
	}{
		{"mismatched", a.CertPEM, b.KeyPEM, "does not match"},
		{"not PEM", []byte("garbage"), a.KeyPEM, "mismatched.crt"},
	} {
		d := filepath.Join(dir, tc.name)
		os.Mkdir(d, 0o755)
		tlstest.Pair{CertPEM: tc.cert, KeyPEM: tc.key}.Write(t, d, tc.name)
		_, err := New(Config{Dir: d, Logger: quiet()})
		if err == nil || !strings.Contains(err.Error(), tc.name+".crt") {
			t.Errorf("%s pair: error %v; want one naming %s.crt", tc.name, err, tc.name)
		}
	}
	if _, err := New(Config{CertFile: "x.crt", Logger: quiet()}); err == nil {
		t.Error("a certificate file without a key file: no error")
	}
	if _, err := New(Config{Dir: t.TempDir(), Logger: quiet()}); err == nil {
		t.Error("an empty directory: no error")
	}
}

// A reload takes what loads, refuses what does not (one log line naming
// the file, counted) and keeps the old certificate of that name; an
// expired certificate is loaded, with a warning.
func TestReload(t *testing.T) {
	ca := tlstest.NewCA(t)
	later := time.Now().Add(time.Hour)
	dir := t.TempDir()
	var logs bytes.Buffer
	first := ca.Leaf(t, later, "a.test")
	first.Write(t, dir, "a")
	ca.Leaf(t, later, "b.test").Write(t, dir, "b")
	s, err := New(Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if s.Poll() {
		t.Error("Poll with no file changed reloaded")
	}

	// A key that does not match: refused, the old a.test kept.
	other := ca.Leaf(t, later, "a.test")
	tlstest.WriteFile(t, filepath.Join(dir, "a.crt"), other.CertPEM)
	if !s.Poll() {
		t.Fatal("Poll after a.crt changed did not reload")
	}
	if got := s.ReloadErrors(); got != 1 {
		t.Errorf("reload errors %d; want 1", got)
	}
	c, _ := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"})
	if want := first.TLS(t); c == nil || !bytes.Equal(c.Certificate[0], want.Certificate[0]) {
		t.Error("after a refused pair, a.test is not served its old certificate")
	}
	if n := strings.Count(logs.String(), "TLS certificate refused"); n != 1 || !strings.Contains(logs.String(), filepath.Join(dir, "a.crt")) {
		t.Errorf("log %q: want one refusal naming a.crt", logs.String())
	}
	if s.Poll() {
		t.Error("a refused pair left unchanged is reloaded again")
	}

	// Its key follows: the new pair is served. An expired one is loaded
	// with a warning; a removed pair goes.
	tlstest.WriteFile(t, filepath.Join(dir, "a.key"), other.KeyPEM)
	expired := ca.Leaf(t, time.Now().Add(-time.Hour), "c.test")
	expired.Write(t, dir, "c")
	os.Remove(filepath.Join(dir, "b.crt"))
	os.Remove(filepath.Join(dir, "b.key"))
	s.Reload()
	c, _ = s.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"})
	if want := other.TLS(t); c == nil || !bytes.Equal(c.Certificate[0], want.Certificate[0]) {
		t.Error("after the key followed, a.test is not served the new certificate")
	}
	if got := servedName(t, s, "c.test"); got != "c.test" {
		t.Errorf("expired c.test: served %q; want it loaded", got)
	}
	if !strings.Contains(logs.String(), "TLS certificate expired") {
		t.Errorf("log %q: no warning of the expired certificate", logs.String())
	}
	if got := servedName(t, s, "b.test"); got != "" {
		t.Errorf("b.test after its files were removed: served %q; want none", got)
	}
	var names []string
	for _, e := range s.Expiries() {
		names = append(names, e.Name)
		if e.Name == "c" && !e.NotAfter.Equal(expired.NotAfter.Truncate(time.Second)) {
			t.Errorf("expiry of c %v; want %v", e.NotAfter, expired.NotAfter)
		}
	}
	if got := strings.Join(names, ","); got != "a,c" {
		t.Errorf("expiries of %s; want a,c", got)
	}
	if got := s.ReloadErrors(); got != 1 {
		t.Errorf("reload errors %d; want still 1", got)
	}
}
