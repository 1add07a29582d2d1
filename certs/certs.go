package certs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	cflog "github.com/cloudflare/cfssl/log"
)

func init() {
	// cfssl logs every certificate it signs at INFO through the standard
	// logger; only its warnings and errors are worth a user's attention.
	cflog.Level = cflog.LevelWarning
}

// Names of the files Generate writes into a directory.
const (
	CACertFileName   = "ca.pem"
	CAKeyFileName    = "ca-key.pem"
	NodeCertFileName = "server.pem"
	NodeKeyFileName  = "server-key.pem"
)

// NodeSubject is the common name of node certificates.
const NodeSubject = "server"

// Subjects of the client certificates Generate always issues: RootSubject is
// the administrator the default ACL grants everything, NobodySubject is a
// valid client the default ACL grants nothing.
const (
	RootSubject   = "root"
	NobodySubject = "nobody"
)

// ClientCertFileName returns the name of the certificate file of the client
// with the given subject: NAME.pem.
func ClientCertFileName(subject string) string { return subject + ".pem" }

// ClientKeyFileName returns the name of the key file of the client with the
// given subject: NAME-key.pem.
func ClientKeyFileName(subject string) string { return subject + "-key.pem" }

// Errors returned by this package; they are wrapped with the file or name
// concerned, so compare them with errors.Is.
var (
	ErrInvalidConfig   = errors.New("certs: invalid config")
	ErrNoCertificate   = errors.New("certs: no certificate")
	ErrNoKey           = errors.New("certs: no private key")
	ErrKeyMismatch     = errors.New("certs: key does not match certificate")
	ErrNotCA           = errors.New("certs: not a CA certificate")
	ErrNotPeer         = errors.New("certs: not a peer certificate")
	ErrUnauthenticated = errors.New("certs: no verified client certificate")
)

// Config says where Generate writes certificates, which ones it issues and
// for how long they are valid. NewCA and LoadCA use only the validity fields.
type Config struct {
	// Dir holds the files named by the *FileName constants.
	Dir string
	// Hosts are extra subject alternative names (DNS names or IP addresses)
	// for the node certificate, beyond localhost, 127.0.0.1, ::1 and the
	// machine's host name.
	Hosts []string
	// Clients are the subjects of client certificates to issue in addition
	// to RootSubject and NobodySubject.
	Clients []string
	// Force replaces existing files. Without it Generate refuses to replace
	// any file; it still reuses an existing CA either way.
	Force bool
	// CAValidity is how long a newly generated CA certificate is valid.
	CAValidity time.Duration
	// LeafValidity is how long node and client certificates are valid.
	LeafValidity time.Duration
	// NotBefore, if set, is the start of the validity of issued node and
	// client certificates, which then end at NotBefore+LeafValidity. Zero
	// means a few minutes ago, to allow for clock skew. Set it in the past
	// to issue an expired certificate for a test.
	NotBefore time.Time
}

// DefaultConfig returns a Config with a CA valid for 10 years and leaf
// certificates valid for one year. Dir is left empty: the caller chooses it.
func DefaultConfig() Config {
	return Config{
		CAValidity:   10 * 365 * 24 * time.Hour,
		LeafValidity: 365 * 24 * time.Hour,
	}
}

// subjectRE limits subjects to names that are safe as file names and as
// casbin policy fields.
var subjectRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]*$`)

// maxSubjectLen is the upper bound X.509 sets on a common name.
const maxSubjectLen = 64

// ValidSubject reports whether subject may name a client: letters, digits
// and . _ @ - (not first), at most 64 bytes, not one of the names whose files
// would collide with the CA's or the node's ("ca", "server") and not ending in
// "-key".
func ValidSubject(subject string) error {
	switch {
	case subject == "":
		return fmt.Errorf("%w: empty client name", ErrInvalidConfig)
	case len(subject) > maxSubjectLen:
		return fmt.Errorf("%w: client name %q is longer than %d bytes", ErrInvalidConfig, subject, maxSubjectLen)
	case !subjectRE.MatchString(subject):
		return fmt.Errorf("%w: client name %q: use letters, digits and . _ @ - only", ErrInvalidConfig, subject)
	case subject == "ca" || subject == NodeSubject:
		return fmt.Errorf("%w: client name %q is reserved", ErrInvalidConfig, subject)
	case strings.HasSuffix(subject, "-key"):
		return fmt.Errorf("%w: client name %q may not end in -key", ErrInvalidConfig, subject)
	}
	return nil
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if c.Dir == "" {
		return fmt.Errorf("%w: no directory", ErrInvalidConfig)
	}
	for _, h := range c.Hosts {
		if h == "" || strings.ContainsAny(h, " \t\r\n,") {
			return fmt.Errorf("%w: host %q", ErrInvalidConfig, h)
		}
	}
	for _, s := range c.Clients {
		if err := ValidSubject(s); err != nil {
			return err
		}
	}
	return c.validateValidity()
}

func (c Config) validateValidity() error {
	if c.CAValidity <= 0 {
		return fmt.Errorf("%w: CA validity %v is not positive", ErrInvalidConfig, c.CAValidity)
	}
	if c.LeafValidity <= 0 {
		return fmt.Errorf("%w: leaf validity %v is not positive", ErrInvalidConfig, c.LeafValidity)
	}
	return nil
}

// issue is one leaf certificate Generate may write.
type issue struct {
	subject  string // empty for the node certificate
	certFile string
	keyFile  string
	explicit bool // asked for in Config, so an existing file is an error
}

// Generate writes a CA, a node certificate and client certificates into
// c.Dir, creating it with mode 0700 if needed, and returns the paths it wrote
// in order, each certificate before its key.
//
// A CA already in c.Dir is reused. With a new CA every file is written, and
// any of them existing is an error unless c.Force is set. With a reused CA,
// the node certificate and the root and nobody clients are written only if
// missing (unless c.Force), while a client named in c.Clients, or the node
// certificate when c.Hosts is set, must not exist yet: so adding a client
// later writes just its two files. If nothing is left to write, or a file
// would be replaced without c.Force, the error wraps fs.ErrExist and names the
// file. Nothing is written unless every check passes.
func Generate(c Config) ([]string, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: create directory: %w", err)
	}
	caCert := filepath.Join(c.Dir, CACertFileName)
	caKey := filepath.Join(c.Dir, CAKeyFileName)
	certThere, err := exists(caCert)
	if err != nil {
		return nil, err
	}
	keyThere, err := exists(caKey)
	if err != nil {
		return nil, err
	}

	var ca *CA
	switch {
	case certThere && keyThere:
		if ca, err = LoadCA(caCert, caKey, c); err != nil {
			return nil, err
		}
		if now := time.Now(); now.After(ca.cert.NotAfter) {
			return nil, fmt.Errorf("certs: CA %s expired on %s", caCert, ca.cert.NotAfter.Format(time.RFC3339))
		}
	case certThere:
		return nil, fmt.Errorf("certs: found %s but not its key %s", caCert, caKey)
	case keyThere:
		return nil, fmt.Errorf("certs: found %s but not its certificate %s", caKey, caCert)
	}
	newCA := ca == nil

	todo := []issue{{
		certFile: filepath.Join(c.Dir, NodeCertFileName),
		keyFile:  filepath.Join(c.Dir, NodeKeyFileName),
		explicit: len(c.Hosts) > 0,
	}}
	seen := map[string]bool{}
	for _, s := range append([]string{RootSubject, NobodySubject}, c.Clients...) {
		if seen[s] {
			continue
		}
		seen[s] = true
		todo = append(todo, issue{
			subject:  s,
			certFile: filepath.Join(c.Dir, ClientCertFileName(s)),
			keyFile:  filepath.Join(c.Dir, ClientKeyFileName(s)),
			explicit: slices.Contains(c.Clients, s),
		})
	}

	var pending []issue
	var firstExisting string
	for _, is := range todo {
		certThere, err := exists(is.certFile)
		if err != nil {
			return nil, err
		}
		keyThere, err := exists(is.keyFile)
		if err != nil {
			return nil, err
		}
		switch {
		case c.Force || (!certThere && !keyThere):
			pending = append(pending, is)
		case newCA || is.explicit || !certThere || !keyThere:
			// A certificate from another CA, one asked for by name, or half
			// a pair: none may be kept silently, none may be replaced.
			existing := is.certFile
			if !certThere {
				existing = is.keyFile
			}
			return nil, existsError(existing)
		default:
			if firstExisting == "" {
				firstExisting = is.certFile
			}
		}
	}
	if len(pending) == 0 {
		return nil, existsError(firstExisting)
	}

	if newCA {
		if ca, err = NewCA(c); err != nil {
			return nil, err
		}
	}
	type file struct {
		path string
		data []byte
		perm fs.FileMode
	}
	var files []file
	if newCA {
		files = append(files,
			file{caCert, ca.pair.CertPEM, certPerm},
			file{caKey, ca.pair.KeyPEM, keyPerm})
	}
	for _, is := range pending {
		var kp KeyPair
		if is.subject == "" {
			kp, err = ca.IssueNode(c.Hosts...)
		} else {
			kp, err = ca.IssueClient(is.subject)
		}
		if err != nil {
			return nil, err
		}
		files = append(files,
			file{is.certFile, kp.CertPEM, certPerm},
			file{is.keyFile, kp.KeyPEM, keyPerm})
	}

	var written []string
	for _, f := range files {
		if err := WriteFile(f.path, f.data, f.perm, c.Force); err != nil {
			return written, err
		}
		written = append(written, f.path)
	}
	return written, nil
}
