// Package certs issues the certificates proglogctl runs on and builds the
// tls.Config values that use them. Certificates are generated in-process with
// the cfssl library; no external tool is needed.
//
// # Certificates
//
// One CA signs two kinds of leaf certificate:
//
//	               ca.pem / ca-key.pem
//	          (self-signed CA, ECDSA P-256, 10 years)
//	              /                      \
//	server.pem / server-key.pem      NAME.pem / NAME-key.pem
//	node certificate, CN "server"    client certificate, CN NAME
//	EKU serverAuth + clientAuth      EKU clientAuth only
//	SANs localhost 127.0.0.1 ::1
//	     host name, extra hosts
//
// A node presents its node certificate both to gRPC clients and to its Raft
// peers, and dials its peers with it, which is why it carries both extended key
// usages. A client certificate names its subject in the common name: that name
// is what authz checks on every call (see SubjectFromState). Generate always
// issues the clients "root" and "nobody" and reuses a CA it finds in the
// directory, so clients can be added later without touching anything else.
//
// # TLS configurations
//
//	ServerTLSConfig  gRPC listener: node certificate, client certificate required
//	                 and verified against the CA
//	ClientTLSConfig  gRPC dialer: client certificate, server verified against the CA
//	PeerTLSConfig    both ends of a Raft connection: as above, and the other end's
//	                 certificate must carry serverAuth, so a client certificate
//	                 signed by the same CA cannot speak Raft
//
// All require TLS 1.2 or later; none skips verification. Errors about a file
// name the file.
//
// A Reloader holds the files of one TLSFiles and builds the same server and
// peer configurations on material it can load again (Reload): accepted
// handshakes get the material in force through GetConfigForClient, dialed
// ones present the certificate in force through GetClientCertificate and
// verify against the CAs of the PeerConfig call (take a new one after a
// Reload). New files are checked before they are used (key matches
// certificate, certificate not expired; for a peer, signed by a CA in the CA
// file and with serverAuth); files that fail are refused with ErrRefused and
// the material before stays.
//
// # Files
//
// Keys are written with mode 0600 and certificates with 0644, each through a
// temporary file in the same directory that is synced and renamed into place.
// An existing file is never replaced unless the caller forces it.
//
// # Concurrency
//
// A CA guards its signer with a mutex and may be shared by goroutines. The
// tls.Config values returned are not modified after they are returned and may
// be used by any number of connections. A Reloader serializes Reload with a
// mutex and swaps its material atomically, so handshakes never wait for it.
package certs
