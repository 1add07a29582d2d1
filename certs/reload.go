package certs

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrRefused wraps the reason Reload kept the material in force.
var ErrRefused = errors.New("certs: new files refused, the ones loaded before stay in force")

// Reloader holds the TLS material named by one TLSFiles (certificate, key and
// CA certificates), read by NewReloader and read again by Reload, and builds
// tls.Config values that use the material in force at each handshake: a
// certificate or CA rotated on disk is taken up by Reload without a restart.
// Connections made before a Reload are not touched.
//
// Reload is serialized by a mutex; the material is an immutable value
// swapped atomically, so handshakes never wait for a Reload.
type Reloader struct {
	files TLSFiles
	peer  bool // the certificate must carry serverAuth (PeerConfig)
	now   func() time.Time

	mu  sync.Mutex // serializes Reload
	cur atomic.Pointer[material]
}

// material is one loaded set of files, never modified once loaded.
type material struct {
	cert   tls.Certificate // Leaf set
	cas    []*x509.Certificate
	pool   *x509.CertPool
	server *tls.Config // what a server presents and verifies with it
}

// NewReloader reads the certificate, key and CA files of f. The certificate
// must match the key and must not have expired. With peer set (for
// PeerConfig) it must also chain to a CA in f.CAFile and carry the
// serverAuth usage, as peers refuse it otherwise; a server's certificate may
// come from another CA than the clients' it verifies. Errors name the file
// at fault.
func NewReloader(f TLSFiles, peer bool) (*Reloader, error) {
	r := &Reloader{files: f, peer: peer, now: time.Now}
	m, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cur.Store(m)
	return r, nil
}

// Files returns the files the Reloader reads.
func (r *Reloader) Files() TLSFiles { return r.files }

// Reload reads the files again. When they load (as for NewReloader) the new material is used by every handshake
// from now on and changes says what differs from before, one line per file
// changed (none when nothing did). Otherwise the error wraps ErrRefused,
// names the file at fault, and the material loaded before stays in force.
func (r *Reloader) Reload() (changes []string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, err := r.load()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	old := r.cur.Load()
	changes = diffMaterial(r.files, old, m)
	if len(changes) > 0 {
		r.cur.Store(m)
	}
	return changes, nil
}

// ServerConfig returns the configuration of a gRPC listener, as
// ServerTLSConfig, that presents the certificate in force at each handshake
// and verifies clients against the CAs in force.
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{
		ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: minTLSVersion,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.cur.Load().server, nil
		},
	}
}

// PeerConfig returns a configuration for both ends of a connection between
// nodes, as PeerTLSConfig. Accepting, it presents the certificate in force
// and verifies against the CAs in force at each handshake. Dialing, it
// presents the certificate in force, but verifies the other end against the
// CAs in force when PeerConfig was called (tls.Config has no hook for the
// roots of a dialing side): a dialer should call PeerConfig again after a
// Reload.
func (r *Reloader) PeerConfig() *tls.Config {
	return &tls.Config{
		ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: minTLSVersion,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.cur.Load().server, nil
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &r.cur.Load().cert, nil
		},
		RootCAs:          r.cur.Load().pool,
		ServerName:       r.files.ServerName,
		VerifyConnection: verifyPeer,
	}
}

// load reads and checks the files.
func (r *Reloader) load() (*material, error) {
	f := r.files
	cert, err := loadKeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, err
	}
	data, err := readFile("CA", f.CAFile)
	if err != nil {
		return nil, err
	}
	cas, err := certificates(data, f.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certs: parse certificate in %s: %w", f.CertFile, err)
		}
		cert.Leaf = leaf
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	now := r.now()
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("certs: certificate %s expired at %s", f.CertFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	// Checked at a time the leaf is valid, so a clock a little behind the
	// issuer's reads as the chain it is; peers check the validity anyway.
	at := now
	if at.Before(leaf.NotBefore) {
		at = leaf.NotBefore
	}
	if r.peer {
		// Peers verify each other against the same CA file: a certificate
		// that does not chain to it would be refused by every peer.
		if _, err := leaf.Verify(x509.VerifyOptions{
			Roots: pool, Intermediates: inter, CurrentTime: at,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		}); err != nil {
			return nil, fmt.Errorf("certs: certificate %s is not signed by a CA in %s: %w", f.CertFile, f.CAFile, err)
		}
		if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
			return nil, fmt.Errorf("%w: certificate %s (%q) lacks the serverAuth usage", ErrNotPeer, f.CertFile, leaf.Subject.CommonName)
		}
	}
	server := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   minTLSVersion,
	}
	if r.peer {
		server.VerifyConnection = verifyPeer
	}
	return &material{cert: cert, cas: cas, pool: pool, server: server}, nil
}

// diffMaterial describes what differs between old and m, a line per file.
func diffMaterial(f TLSFiles, old, m *material) []string {
	var changes []string
	if !slices.EqualFunc(old.cert.Certificate, m.cert.Certificate, bytes.Equal) {
		changes = append(changes, fmt.Sprintf("certificate %s: %s replaced by %s", f.CertFile, describe(old.cert.Leaf), describe(m.cert.Leaf)))
	} else if !keysEqual(old.cert, m.cert) {
		changes = append(changes, fmt.Sprintf("key %s replaced", f.KeyFile))
	}
	oldCAs, newCAs := fingerprints(old.cas), fingerprints(m.cas)
	if !slices.Equal(oldCAs, newCAs) {
		var added, removed []string
		for i, c := range m.cas {
			if !slices.Contains(oldCAs, newCAs[i]) {
				added = append(added, describe(c))
			}
		}
		for i, c := range old.cas {
			if !slices.Contains(newCAs, oldCAs[i]) {
				removed = append(removed, describe(c))
			}
		}
		line := fmt.Sprintf("CA %s:", f.CAFile)
		if len(added) > 0 {
			line += " added " + strings.Join(added, ", ")
		}
		if len(removed) > 0 {
			if len(added) > 0 {
				line += ";"
			}
			line += " removed " + strings.Join(removed, ", ")
		}
		if len(added) == 0 && len(removed) == 0 {
			line += " reordered"
		}
		changes = append(changes, line)
	}
	return changes
}

// describe names a certificate for a log line.
func describe(c *x509.Certificate) string {
	return fmt.Sprintf("%q serial %x valid until %s", c.Subject.CommonName, c.SerialNumber, c.NotAfter.UTC().Format(time.RFC3339))
}

func fingerprints(cs []*x509.Certificate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		sum := sha256.Sum256(c.Raw)
		out[i] = string(sum[:])
	}
	return out
}

// keysEqual reports whether two key pairs hold the same private key.
func keysEqual(a, b tls.Certificate) bool {
	ka, ok := a.PrivateKey.(interface {
		Equal(x crypto.PrivateKey) bool
	})
	return ok && ka.Equal(b.PrivateKey)
}
