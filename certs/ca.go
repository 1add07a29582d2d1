package certs

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/cloudflare/cfssl/config"
	"github.com/cloudflare/cfssl/csr"
	"github.com/cloudflare/cfssl/helpers"
	"github.com/cloudflare/cfssl/initca"
	"github.com/cloudflare/cfssl/signer"
	"github.com/cloudflare/cfssl/signer/local"
)

// Signing profiles of the CA.
const (
	profileNode   = "node"
	profileClient = "client"
)

// caCommonName is the subject of generated CAs.
const caCommonName = "proglog CA"

// KeyPair is a PEM-encoded certificate and its PEM-encoded private key.
type KeyPair struct {
	CertPEM []byte
	KeyPEM  []byte
}

// Write writes the certificate to certFile with mode 0644 and the key to
// keyFile with mode 0600. Unless force is set it writes neither if either
// exists, and the error wraps fs.ErrExist and names the file.
func (kp KeyPair) Write(certFile, keyFile string, force bool) error {
	if !force {
		for _, p := range []string{certFile, keyFile} {
			there, err := exists(p)
			if err != nil {
				return err
			}
			if there {
				return existsError(p)
			}
		}
	}
	if err := WriteFile(certFile, kp.CertPEM, certPerm, force); err != nil {
		return err
	}
	return WriteFile(keyFile, kp.KeyPEM, keyPerm, force)
}

// CA is a certificate authority that issues node and client certificates.
// Its mutex guards the cfssl signer, so a CA may be shared by goroutines.
type CA struct {
	cert      *x509.Certificate
	pair      KeyPair
	validity  time.Duration // of issued certificates
	notBefore time.Time     // of issued certificates; zero for now

	mu     sync.Mutex
	signer *local.Signer
}

// NewCA generates a self-signed CA valid for c.CAValidity whose certificates
// are valid for c.LeafValidity from c.NotBefore. It may sign leaf
// certificates only, not intermediate CAs.
func NewCA(c Config) (*CA, error) {
	if err := c.validateValidity(); err != nil {
		return nil, err
	}
	req := &csr.CertificateRequest{
		CN:         caCommonName,
		Names:      []csr.Name{{O: "proglog"}},
		KeyRequest: newKeyRequest(),
		CA:         &csr.CAConfig{Expiry: c.CAValidity.String(), PathLenZero: true},
	}
	certPEM, _, keyPEM, err := initca.New(req)
	if err != nil {
		return nil, fmt.Errorf("certs: generate CA: %w", err)
	}
	cert, err := helpers.ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: parse generated CA: %w", err)
	}
	key, err := helpers.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: parse generated CA key: %w", err)
	}
	return newCA(cert, key, KeyPair{CertPEM: certPEM, KeyPEM: keyPEM}, c)
}

// LoadCA reads a CA certificate and its key, as written by Generate, to issue
// certificates valid for c.LeafValidity from c.NotBefore. Errors name the
// file at fault.
func LoadCA(certFile, keyFile string, c Config) (*CA, error) {
	if err := c.validateValidity(); err != nil {
		return nil, err
	}
	certPEM, err := readFile("CA", certFile)
	if err != nil {
		return nil, err
	}
	cert, err := firstCertificate(certPEM, certFile)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%w: %s (subject %q)", ErrNotCA, certFile, cert.Subject.CommonName)
	}
	keyPEM, err := readFile("CA key", keyFile)
	if err != nil {
		return nil, err
	}
	key, err := privateKey(keyPEM, keyFile)
	if err != nil {
		return nil, err
	}
	if !samePublicKey(key.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("%w: key %s, certificate %s", ErrKeyMismatch, keyFile, certFile)
	}
	return newCA(cert, key, KeyPair{CertPEM: certPEM, KeyPEM: keyPEM}, c)
}

func newCA(cert *x509.Certificate, key crypto.Signer, pair KeyPair, c Config) (*CA, error) {
	usage := func(u ...string) *config.SigningProfile {
		return &config.SigningProfile{
			Usage:        append([]string{"digital signature"}, u...),
			Expiry:       c.LeafValidity,
			ExpiryString: c.LeafValidity.String(),
		}
	}
	policy := &config.Signing{
		Default: usage(),
		Profiles: map[string]*config.SigningProfile{
			profileNode:   usage("server auth", "client auth"),
			profileClient: usage("client auth"),
		},
	}
	s, err := local.NewSigner(key, cert, signer.DefaultSigAlgo(key), policy)
	if err != nil {
		return nil, fmt.Errorf("certs: CA signer: %w", err)
	}
	return &CA{
		cert:      cert,
		pair:      pair,
		validity:  c.LeafValidity,
		notBefore: c.NotBefore,
		signer:    s,
	}, nil
}

// Certificate returns the CA's certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// KeyPair returns the CA's certificate and key, PEM-encoded.
func (ca *CA) KeyPair() KeyPair { return ca.pair }

// IssueNode issues a node certificate (common name NodeSubject, extended key
// usages serverAuth and clientAuth) whose subject alternative names are
// localhost, 127.0.0.1, ::1, the machine's host name if it has one, and hosts.
func (ca *CA) IssueNode(hosts ...string) (KeyPair, error) {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		names = append(names, h)
	}
	for _, h := range hosts {
		if h == "" {
			return KeyPair{}, fmt.Errorf("%w: empty host name", ErrInvalidConfig)
		}
		if !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	return ca.issue(profileNode, NodeSubject, names)
}

// IssueClient issues a client certificate with common name subject and
// extended key usage clientAuth only. The subject must pass ValidSubject.
func (ca *CA) IssueClient(subject string) (KeyPair, error) {
	if err := ValidSubject(subject); err != nil {
		return KeyPair{}, err
	}
	return ca.issue(profileClient, subject, nil)
}

func (ca *CA) issue(profile, cn string, hosts []string) (KeyPair, error) {
	csrPEM, keyPEM, err := csr.ParseRequest(&csr.CertificateRequest{
		CN:         cn,
		Hosts:      hosts,
		KeyRequest: newKeyRequest(),
	})
	if err != nil {
		return KeyPair{}, fmt.Errorf("certs: key and request for %q: %w", cn, err)
	}
	req := signer.SignRequest{Hosts: hosts, Request: string(csrPEM), Profile: profile}
	if !ca.notBefore.IsZero() {
		req.NotBefore = ca.notBefore
		req.NotAfter = ca.notBefore.Add(ca.validity)
	}
	ca.mu.Lock()
	certPEM, err := ca.signer.Sign(req)
	ca.mu.Unlock()
	if err != nil {
		return KeyPair{}, fmt.Errorf("certs: sign certificate for %q: %w", cn, err)
	}
	return KeyPair{CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// newKeyRequest asks for an ECDSA P-256 key.
func newKeyRequest() *csr.KeyRequest { return &csr.KeyRequest{A: "ecdsa", S: 256} }

func samePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
