// Package tlscert is the server side of the proxy's TLS: the certificates
// its TLS listener serves, chosen by SNI and reloaded when their files
// change, and the TLS configuration built on them (versions, suites,
// session ticket keys).
package tlscert

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultName is the name of the default certificate: the one served to a
// client that sends no SNI, or a name no other certificate has. It is the
// name of the Config.CertFile pair, and of a pair default.crt, default.key
// in Config.Dir.
const DefaultName = "default"

// Suffixes of the files of a pair in Config.Dir: NAME.crt holds the
// certificate chain (leaf first), NAME.key its private key, both PEM.
const (
	CertSuffix = ".crt"
	KeySuffix  = ".key"
)

// DefaultInterval is Config.Interval's default.
const DefaultInterval = 5 * time.Second

// ErrNoCertificate is the error of a handshake for which the store has no
// certificate: a name that none has, and no default.
var ErrNoCertificate = errors.New("tlscert: no certificate for the server name")

// Config says where a Store's certificates are.
type Config struct {
	// CertFile and KeyFile are a PEM pair: the default certificate.
	// Either both or neither.
	CertFile, KeyFile string
	// Dir holds pairs NAME.crt and NAME.key; other files are ignored. A
	// pair's names (SNI) are its certificate's DNS names; NAME labels
	// it in logs and metrics. "default" is the default certificate
	// unless CertFile is given (then both are an error).
	Dir string
	// Interval is how often Run looks for changed files. DefaultInterval
	// when 0 or less.
	Interval time.Duration
	// Logger receives the reload log lines. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock that expiry is checked against; time.Now when nil.
	Now func() time.Time
}

// A Store holds the certificates of Config and picks one per handshake
// (GetCertificate). Reload and Run replace them; handshakes never wait
// for a reload and read the set in use without a lock.
type Store struct {
	cfg    Config
	set    atomic.Pointer[certSet]
	errors atomic.Uint64

	mu   sync.Mutex             // serialises reloads
	seen map[string]os.FileInfo // the files behind the set, as last read
	byID map[string]*loaded     // name -> pair in use
}

// loaded is one pair in use.
type loaded struct {
	name     string
	certFile string
	keyFile  string
	cert     *tls.Certificate
}

// certSet is an immutable choice of certificates: what GetCertificate
// reads.
type certSet struct {
	exact    map[string]*tls.Certificate // "api.example.test"
	wildcard map[string]*tls.Certificate // "example.test" for *.example.test
	def      *tls.Certificate
	expiry   []Expiry
}

// Expiry is when the certificate of a name expires.
type Expiry struct {
	Name     string
	NotAfter time.Time
}

// New loads the certificates of cfg. Any pair that cannot be loaded is
// an error: a store starts whole or not at all.
func New(cfg Config) (*Store, error) {
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("tlscert: a certificate file needs its key file, and a key file its certificate")
	}
	if cfg.CertFile == "" && cfg.Dir == "" {
		return nil, errors.New("tlscert: no certificates: give a certificate and key file, or a directory")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Store{cfg: cfg, byID: map[string]*loaded{}}
	pairs, seen, err := s.scan()
	if err != nil {
		return nil, err
	}
	for _, p := range pairs {
		l, err := s.load(p)
		if err != nil {
			return nil, err
		}
		s.byID[p.name] = l
	}
	s.seen = seen
	if len(s.byID) == 0 {
		return nil, fmt.Errorf("tlscert: %s: no certificate pairs (NAME%s with NAME%s)", cfg.Dir, CertSuffix, KeySuffix)
	}
	s.publish()
	return s, nil
}

// pair is a name's certificate and key files.
type pair struct{ name, certFile, keyFile string }

// scan lists the pairs of the configuration, and the state of their
// files (and of the directory) for change detection.
func (s *Store) scan() ([]pair, map[string]os.FileInfo, error) {
	var pairs []pair
	seen := map[string]os.FileInfo{}
	stat := func(path string) {
		if fi, err := os.Stat(path); err == nil {
			seen[path] = fi
		}
	}
	if s.cfg.CertFile != "" {
		pairs = append(pairs, pair{DefaultName, s.cfg.CertFile, s.cfg.KeyFile})
		stat(s.cfg.CertFile)
		stat(s.cfg.KeyFile)
	}
	if dir := s.cfg.Dir; dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("tlscert: %w", err)
		}
		for _, e := range entries {
			name, ok := strings.CutSuffix(e.Name(), CertSuffix)
			if !ok || name == "" || e.IsDir() {
				continue
			}
			if name == DefaultName && s.cfg.CertFile != "" {
				return nil, nil, fmt.Errorf("tlscert: %s: a default certificate, and another given as a file (%s); keep one",
					filepath.Join(dir, e.Name()), s.cfg.CertFile)
			}
			p := pair{name, filepath.Join(dir, e.Name()), filepath.Join(dir, name+KeySuffix)}
			pairs = append(pairs, p)
			stat(p.certFile)
			stat(p.keyFile)
		}
	}
	return pairs, seen, nil
}

// load reads and checks one pair: the key must match the certificate. An
// expired certificate is loaded, with a warning.
func (s *Store) load(p pair) (*loaded, error) {
	certPEM, err := os.ReadFile(p.certFile)
	if err != nil {
		return nil, fmt.Errorf("tlscert: %w", err)
	}
	keyPEM, err := os.ReadFile(p.keyFile)
	if err != nil {
		return nil, fmt.Errorf("tlscert: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tlscert: %s with %s: %w", p.certFile, p.keyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tlscert: %s: %w", p.certFile, err)
		}
		cert.Leaf = leaf
	}
	if now := s.cfg.Now(); now.After(leaf.NotAfter) {
		s.cfg.Logger.Warn("TLS certificate expired; serving it until it is replaced",
			"name", p.name, "file", p.certFile, "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &loaded{name: p.name, certFile: p.certFile, keyFile: p.keyFile, cert: &cert}, nil
}

// publish builds the certificate set of s.byID and makes it the one in
// use. The caller holds s.mu, or owns s.
func (s *Store) publish() {
	set := &certSet{exact: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}}
	names := make([]string, 0, len(s.byID))
	for n := range s.byID {
		names = append(names, n)
	}
	sort.Strings(names) // a name two pairs claim goes to the first
	for _, n := range names {
		l := s.byID[n]
		if n == DefaultName {
			set.def = l.cert
		}
		set.expiry = append(set.expiry, Expiry{Name: n, NotAfter: l.cert.Leaf.NotAfter})
		for _, dns := range l.cert.Leaf.DNSNames {
			dns = strings.ToLower(strings.TrimSuffix(dns, "."))
			m := set.exact
			if rest, ok := strings.CutPrefix(dns, "*."); ok {
				m, dns = set.wildcard, rest
			}
			if _, taken := m[dns]; !taken {
				m[dns] = l.cert
			}
		}
	}
	s.set.Store(set)
}

// GetCertificate is tls.Config.GetCertificate: the certificate whose
// name is the client's server name (SNI), else one whose wildcard
// (*.example.test) covers it (one label), else the default. No server
// name gets the default. With none of them it fails with
// ErrNoCertificate, and the handshake with an alert.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	set := s.set.Load()
	if name := hello.ServerName; name != "" {
		if c := set.lookup(name); c != nil {
			return c, nil
		}
	}
	if set.def != nil {
		return set.def, nil
	}
	return nil, ErrNoCertificate
}

func (set *certSet) lookup(name string) *tls.Certificate {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if c := set.exact[name]; c != nil {
		return c
	}
	if _, rest, ok := strings.Cut(name, "."); ok {
		return set.wildcard[rest]
	}
	return nil
}

// Expiries lists each certificate's name and expiry, by name.
func (s *Store) Expiries() []Expiry { return slices.Clone(s.set.Load().expiry) }

// ReloadErrors counts the pairs a reload refused.
func (s *Store) ReloadErrors() uint64 { return s.errors.Load() }

// Reload reads every pair again. A pair that loads replaces the one of
// its name; one that does not (unreadable, not PEM, a key that does not
// match its certificate) is refused with one log line naming its file,
// counted (ReloadErrors), and the old certificate of its name, if any,
// stays in use. Pairs whose files are gone are dropped. Handshakes under
// way keep the certificate they picked; later ones use the new set.
func (s *Store) Reload() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reload()
}

func (s *Store) reload() {
	pairs, seen, err := s.scan()
	if err != nil {
		s.errors.Add(1)
		s.cfg.Logger.Error("TLS certificates not reloaded; the old ones keep serving", "dir", s.cfg.Dir, "error", err)
		return
	}
	s.seen = seen
	next := make(map[string]*loaded, len(pairs))
	for _, p := range pairs {
		l, err := s.load(p)
		if err != nil {
			s.errors.Add(1)
			old := s.byID[p.name]
			s.cfg.Logger.Error("TLS certificate refused", "name", p.name, "file", p.certFile, "keeps_old", old != nil, "error", err)
			if old != nil {
				next[p.name] = old
			}
			continue
		}
		next[p.name] = l
	}
	s.byID = next
	s.publish()
	s.cfg.Logger.Info("TLS certificates loaded", "count", len(next))
}

// changed reports whether the files have changed since they were last
// read.
func (s *Store) changed() bool {
	_, seen, err := s.scan()
	if err != nil {
		return false // reported by the reload that follows a fix
	}
	if len(seen) != len(s.seen) {
		return true
	}
	for path, fi := range seen {
		old, ok := s.seen[path]
		if !ok || old.Size() != fi.Size() || !old.ModTime().Equal(fi.ModTime()) || !os.SameFile(old, fi) {
			return true
		}
	}
	return false
}

// Poll reloads when a file has changed since the last load (Run calls it
// every Config.Interval), and reports whether it did.
func (s *Store) Poll() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.changed() {
		return false
	}
	s.reload()
	return true
}

// Run polls for changed files every Config.Interval until done is
// closed.
func (s *Store) Run(done <-chan struct{}) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			s.Poll()
		}
	}
}
