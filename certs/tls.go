package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
)

// minTLSVersion is the oldest protocol version any configuration accepts.
const minTLSVersion = tls.VersionTLS12

// TLSFiles names the PEM files a tls.Config is built from.
type TLSFiles struct {
	// CertFile and KeyFile are this end's certificate and private key.
	CertFile string
	KeyFile  string
	// CAFile holds the CA certificate(s) the other end must chain to.
	CAFile string
	// ServerName is the name the server's certificate must carry, for the
	// dialing side. Leave it empty when dialing with something that fills
	// it in from the address (grpc, tls.Dial); set it on a clone of the
	// configuration before tls.Client otherwise.
	ServerName string
}

// ServerTLSConfig returns the configuration of a gRPC listener: it presents
// the certificate in f.CertFile and requires every client to present a
// certificate that chains to f.CAFile.
func ServerTLSConfig(f TLSFiles) (*tls.Config, error) {
	cert, err := loadKeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, err
	}
	pool, err := loadCAPool(f.CAFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   minTLSVersion,
	}, nil
}

// ClientTLSConfig returns the configuration of a client: it verifies the
// server against f.CAFile (and f.ServerName if set) and presents the
// certificate in f.CertFile. With neither CertFile nor KeyFile set it
// presents no certificate, which servers built here refuse.
func ClientTLSConfig(f TLSFiles) (*tls.Config, error) {
	pool, err := loadCAPool(f.CAFile)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{
		RootCAs:    pool,
		ServerName: f.ServerName,
		MinVersion: minTLSVersion,
	}
	if f.CertFile != "" || f.KeyFile != "" {
		cert, err := loadKeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// PeerTLSConfig returns one configuration for both ends of a connection
// between nodes (Raft): it presents the node certificate in f.CertFile, as a
// server requires the other end's certificate, verifies either end against
// f.CAFile, and rejects with ErrNotPeer a certificate without the serverAuth
// extended key usage, so that a client certificate cannot speak for a node.
func PeerTLSConfig(f TLSFiles) (*tls.Config, error) {
	c, err := ServerTLSConfig(f)
	if err != nil {
		return nil, err
	}
	c.RootCAs = c.ClientCAs
	c.ServerName = f.ServerName
	c.VerifyConnection = verifyPeer
	return c, nil
}

// verifyPeer runs after the chain was verified, on both ends and on resumed
// sessions too.
func verifyPeer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: the other end sent no certificate", ErrNotPeer)
	}
	leaf := cs.PeerCertificates[0]
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return fmt.Errorf("%w: certificate of %q lacks the serverAuth usage", ErrNotPeer, leaf.Subject.CommonName)
	}
	return nil
}

// SubjectFromState returns the subject, the common name of the verified leaf
// certificate, of the other end of a connection; authz authorizes it. The
// error wraps ErrUnauthenticated if no certificate was verified or it has no
// common name. For gRPC, pass credentials.TLSInfo.State of the peer.
func SubjectFromState(cs tls.ConnectionState) (string, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", ErrUnauthenticated
	}
	leaf := cs.VerifiedChains[0][0]
	if leaf.Subject.CommonName == "" {
		return "", fmt.Errorf("%w: certificate %x has no common name", ErrUnauthenticated, leaf.SerialNumber)
	}
	return leaf.Subject.CommonName, nil
}

// loadKeyPair reads a certificate and its key; errors name the file.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := readFile("certificate", certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	if _, err := certificates(certPEM, certFile); err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := readFile("key", keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	if _, err := privateKey(keyPEM, keyFile); err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: key %s, certificate %s: %v", ErrKeyMismatch, keyFile, certFile, err)
	}
	return cert, nil
}

// loadCAPool reads the CA certificates in path into a pool.
func loadCAPool(path string) (*x509.CertPool, error) {
	data, err := readFile("CA", path)
	if err != nil {
		return nil, err
	}
	cs, err := certificates(data, path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range cs {
		pool.AddCert(c)
	}
	return pool, nil
}
