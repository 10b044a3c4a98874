package tlscert

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Protocols are the application protocols offered by ALPN, in order of
// preference. HTTP/2 is one more entry ("h2", first) once a front end
// serves it.
var Protocols = []string{"h2", "http/1.1"}

// cipherSuites are the TLS 1.2 suites offered: ECDHE key exchange with
// an AEAD only. (TLS 1.3's are not configurable, and all AEAD.)
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// DefaultTicketRotation is ServerOptions.TicketRotation's default.
const DefaultTicketRotation = 24 * time.Hour

// ErrNoClientCertificate fails the handshake of a client that sent no
// certificate when client certificates are required.
var ErrNoClientCertificate = errors.New("tlscert: the client sent no certificate")

// ServerOptions configure ServerConfig.
type ServerOptions struct {
	// ClientCA, when set, is a PEM bundle of the CAs that sign client
	// certificates: every client must present one that verifies
	// against it.
	ClientCA string
}

// ServerConfig is the TLS configuration of the proxy's TLS listener:
// TLS 1.2 and 1.3, for 1.2 only ECDHE suites with an AEAD, ALPN
// Protocols, certificates from store, and session resumption with the
// ticket keys of a Tickets rotor (see NewTickets).
func ServerConfig(store *Store, o ServerOptions) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		MaxVersion:     tls.VersionTLS13,
		CipherSuites:   cipherSuites,
		NextProtos:     Protocols,
		GetCertificate: store.GetCertificate,
	}
	if o.ClientCA != "" {
		pem, err := os.ReadFile(o.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("tlscert: client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tlscert: client CA %s: no PEM certificate in it", o.ClientCA)
		}
		// Verified when given, and then required by VerifyConnection: a
		// missing certificate fails with an error of its own, which the
		// TLS layer counts apart.
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrNoClientCertificate
			}
			return nil
		}
	}
	return cfg, nil
}

// Tickets sets the session ticket keys of a tls.Config and rotates them:
// new tickets are sealed with the current key; tickets of the previous
// key still resume, for one rotation period; older ones start a full
// handshake.
type Tickets struct {
	cfg *tls.Config

	mu   sync.Mutex
	keys [][32]byte // current first, then the previous one
}

// NewTickets gives cfg a first ticket key.
func NewTickets(cfg *tls.Config) (*Tickets, error) {
	t := &Tickets{cfg: cfg}
	return t, t.Rotate()
}

// Rotate makes a new key current and keeps the current one as the
// previous.
func (t *Tickets) Rotate() error {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return fmt.Errorf("tlscert: ticket key: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := [][32]byte{k}
	if len(t.keys) > 0 {
		keys = append(keys, t.keys[0])
	}
	t.keys = keys
	t.cfg.SetSessionTicketKeys(keys)
	return nil
}

// Run rotates the keys every period (DefaultTicketRotation when 0 or
// less) until done is closed.
func (t *Tickets) Run(period time.Duration, done <-chan struct{}) {
	if period <= 0 {
		period = DefaultTicketRotation
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			_ = t.Rotate() // a failed read of randomness keeps the keys
		}
	}
}
