package commands

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/discovery"
)

// Exit codes of the client commands, beyond ExitError and ExitUsage.
const (
	ExitUnavailable = 3 // no server reachable, no leader, or no answer in time
	ExitDenied      = 4 // the ACL does not allow the call
	ExitOutOfRange  = 5 // an offset outside the log
	ExitTLS         = 6 // TLS handshake or authentication failed: a certificate not accepted
)

// clusterFile, in the config directory, holds the address `serve --dev` runs
// its cluster on; client commands dial it when --addr is not given.
const clusterFile = "cluster"

// defaultAddr is the cluster address client commands use without --addr, a
// profile or a dev cluster's address in the config directory.
const defaultAddr = discovery.Scheme + "://127.0.0.1:8400"

// clusterAddrIn is the address `serve --dev` wrote into dir, else defaultAddr.
func clusterAddrIn(dir string) string {
	if b, err := os.ReadFile(filepath.Join(dir, clusterFile)); err == nil {
		if a := strings.TrimSpace(string(b)); a != "" {
			return a
		}
	}
	return defaultAddr
}

// clientFlags are the flags every client command takes. The flags a profile
// sets have no default of their own here: clientSettings fills in the
// profile's value, else the default, for those not given.
func clientFlags() []cli.Flag {
	return []cli.Flag{
		configDirFlag(),
		&cli.StringFlag{Name: "profile", Aliases: []string{"P"}, Usage: "take the cluster's address and credentials from this profile (`NAME`; default: the one profile use chose); flags and PROGLOG_* variables beat it", EnvVars: []string{"PROGLOG_PROFILE"}},
		&cli.StringFlag{Name: "addr", Usage: "cluster to talk to: proglog://host:port[,host:port...] (default: the profile's, else the dev cluster's, else proglog://127.0.0.1:8400)", EnvVars: []string{"PROGLOG_ADDR"}},
		&cli.StringFlag{Name: "ca-file", Usage: "CA certificate servers are verified against (default: the profile's, else ca.pem in the config directory)", EnvVars: []string{"PROGLOG_CA_FILE"}, TakesFile: true},
		&cli.StringFlag{Name: "cert-file", Usage: "client certificate (its subject is who you are to the ACL; default: the profile's, else root.pem in the config directory)", EnvVars: []string{"PROGLOG_CERT_FILE"}, TakesFile: true},
		&cli.StringFlag{Name: "key-file", Usage: "client key (default: the profile's, else root-key.pem in the config directory)", EnvVars: []string{"PROGLOG_KEY_FILE"}, TakesFile: true},
		&cli.StringSliceFlag{Name: "connect-to", Usage: "connect to `HOST:PORT=HOST2:PORT2` when the cluster names a server HOST:PORT (repeatable; the server is still verified as HOST), for servers whose addresses do not resolve here, such as containers with published ports", EnvVars: []string{"PROGLOG_CONNECT_TO"}},
		&cli.DurationFlag{Name: "timeout", Usage: "how long one request (or a read, for each record) may wait for a server (or the leader) to answer", Value: 10 * time.Second, EnvVars: []string{"PROGLOG_TIMEOUT"}},
		&cli.IntFlag{Name: "max-record-bytes", Usage: "the servers' record limit: produce refuses longer records before sending anything of them, and requests and answers are sized for it", Value: discovery.DefaultMaxRecordBytes, EnvVars: []string{"PROGLOG_MAX_RECORD_BYTES"}},
	}
}

// clientSettings are the client flags after the profile and the defaults
// have filled in what was not given.
type clientSettings struct {
	Addr, CAFile, CertFile, KeyFile string
	ConnectTo                       []string
}

// settings resolves the client flags: a flag or PROGLOG_* variable beats the
// profile (--profile, else the current one), which beats the defaults.
func settings(c *cli.Context) (clientSettings, error) {
	dir, err := configDir(c)
	if err != nil {
		return clientSettings{}, err
	}
	s := clientSettings{
		Addr:     clusterAddrIn(dir),
		CAFile:   filepath.Join(dir, certs.CACertFileName),
		CertFile: filepath.Join(dir, certs.ClientCertFileName(certs.RootSubject)),
		KeyFile:  filepath.Join(dir, certs.ClientKeyFileName(certs.RootSubject)),
	}
	p, err := chosenProfile(c)
	if err != nil {
		return s, err
	}
	if p != nil {
		s.Addr, s.CAFile, s.CertFile, s.KeyFile, s.ConnectTo = p.Addr, p.CAFile, p.CertFile, p.KeyFile, p.ConnectTo
	}
	for name, v := range map[string]*string{"addr": &s.Addr, "ca-file": &s.CAFile, "cert-file": &s.CertFile, "key-file": &s.KeyFile} {
		if c.IsSet(name) {
			*v = c.String(name)
		}
	}
	if c.IsSet("connect-to") {
		s.ConnectTo = nonEmpty(c.StringSlice("connect-to"))
	}
	return s, nil
}

// callCtx bounds one request by --timeout.
func callCtx(c *cli.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Context, c.Duration("timeout"))
}

// dial connects to the cluster the client flags name.
func dial(c *cli.Context) (*discovery.Client, error) {
	s, err := settings(c)
	if err != nil {
		return nil, err
	}
	if n := c.Int("max-record-bytes"); n < 1 {
		return nil, UsageError{Err: fmt.Errorf("%s: --max-record-bytes %d: want a positive number of bytes", c.Command.Name, n)}
	}
	tlsConf, err := certs.ClientTLSConfig(certs.TLSFiles{CertFile: s.CertFile, KeyFile: s.KeyFile, CAFile: s.CAFile})
	if err != nil {
		return nil, fmt.Errorf("client credentials: %w (`proglogctl serve --dev` makes some; else give --ca-file, --cert-file and --key-file, or a --profile)", err)
	}
	if err := checkValidity(tlsConf, s.CertFile, time.Now()); err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{discovery.MaxRecordBytes(c.Int("max-record-bytes"))}
	if to, err := connectTo(s.ConnectTo); err != nil {
		return nil, err
	} else if len(to) > 0 {
		opts = append(opts, discovery.ConnectTo(to))
	}
	cl, err := discovery.Dial(s.Addr, tlsConf, opts...)
	if err != nil {
		return nil, UsageError{Err: fmt.Errorf("%s: --addr %q: want proglog://host:port[,host:port...]", c.Command.Name, s.Addr)}
	}
	// Reads are bounded by --timeout too: between records, not in all.
	cl.SetAnswerTimeout(c.Duration("timeout"))
	return cl, nil
}

// checkValidity fails with ExitTLS when the client certificate has expired
// or is not valid yet: no server would accept it, and saying so here is
// clearer than the handshake's alert.
func checkValidity(conf *tls.Config, file string, now time.Time) error {
	if len(conf.Certificates) == 0 || len(conf.Certificates[0].Certificate) == 0 {
		return nil
	}
	leaf, err := x509.ParseCertificate(conf.Certificates[0].Certificate[0])
	if err != nil {
		return nil // the handshake will say what is wrong with it
	}
	switch {
	case now.After(leaf.NotAfter):
		return CodedError{ExitTLS, fmt.Errorf("the client certificate %s expired on %s: issue a new one (proglogctl gencert)", file, leaf.NotAfter.UTC().Format(time.DateOnly))}
	case now.Before(leaf.NotBefore):
		return CodedError{ExitTLS, fmt.Errorf("the client certificate %s is not valid before %s: is this machine's clock right?", file, leaf.NotBefore.UTC().Format(time.RFC3339))}
	}
	return nil
}

// connectTo parses --connect-to values, each HOST:PORT=HOST2:PORT2.
func connectTo(args []string) (map[string]string, error) {
	to := map[string]string{}
	for _, arg := range args {
		from, addr, ok := strings.Cut(arg, "=")
		from, addr = strings.TrimSpace(from), strings.TrimSpace(addr)
		if !ok || !isHostPort(from) || !isHostPort(addr) {
			return nil, UsageError{Err: fmt.Errorf("--connect-to %q: want HOST:PORT=HOST2:PORT2", arg)}
		}
		to[from] = addr
	}
	return to, nil
}

func isHostPort(a string) bool {
	h, p, err := net.SplitHostPort(a)
	return err == nil && h != "" && p != ""
}

// CodedError carries the exit code an error maps to.
type CodedError struct {
	Code int
	Err  error
}

func (e CodedError) Error() string { return e.Err.Error() }
func (e CodedError) Unwrap() error { return e.Err }

// callError turns an error of a call to the cluster into a sentence a
// person can act on, with an exit code scripts can rely on. Every gRPC code
// gets one; the raw status text never reaches the user.
func callError(c *cli.Context, err error) error {
	var ce *discovery.ConnectError
	if errors.As(err, &ce) {
		return connectError(c, ce)
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	// Drop the package prefixes servers put on their messages.
	for _, p := range []string{"node: ", "authz: ", "logstore: ", "raftfsm: ", "discovery: ", "certs: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	addr := c.String("addr")
	if s, err := settings(c); err == nil {
		addr = s.Addr
	}
	switch st.Code() {
	case codes.PermissionDenied:
		return CodedError{ExitDenied, fmt.Errorf("permission denied: %s", strings.ReplaceAll(msg, `"`, "'"))}
	case codes.Unauthenticated:
		return CodedError{ExitTLS, fmt.Errorf("not authenticated: %s", msg)}
	case codes.OutOfRange:
		return CodedError{ExitOutOfRange, errors.New(msg)}
	case codes.DeadlineExceeded:
		if msg == context.DeadlineExceeded.Error() {
			return CodedError{ExitUnavailable, fmt.Errorf("no answer from %s within --timeout %v: the servers are up but no leader was ready, or they are overloaded", addr, c.Duration("timeout"))}
		}
		return CodedError{ExitUnavailable, fmt.Errorf("no answer within --timeout %v: %s", c.Duration("timeout"), msg)}
	case codes.Unavailable:
		return CodedError{ExitUnavailable, fmt.Errorf("cluster at %s unavailable: %s", addr, msg)}
	case codes.InvalidArgument:
		return CodedError{ExitError, fmt.Errorf("refused: %s", msg)}
	case codes.ResourceExhausted:
		if m := sizeRE.FindStringSubmatch(msg); m != nil {
			return CodedError{ExitError, fmt.Errorf("refused: a request of %s bytes is over the limit of %s bytes; records over the servers' record limit are refused (--max-record-bytes tells the client that limit)", m[1], m[2])}
		}
		return CodedError{ExitError, fmt.Errorf("refused: the server is out of a resource: %s", msg)}
	case codes.Canceled:
		return CodedError{ExitError, errors.New("interrupted")}
	case codes.Unimplemented:
		return CodedError{ExitError, fmt.Errorf("the server does not know this call (is it an older version?): %s", msg)}
	case codes.Internal, codes.DataLoss:
		return CodedError{ExitError, fmt.Errorf("the server failed (its log says more): %s", msg)}
	case codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition, codes.Aborted:
		return CodedError{ExitError, fmt.Errorf("the server refused the call: %s", msg)}
	}
	return CodedError{ExitError, fmt.Errorf("unexpected answer from the server: %s", msg)}
}

// sizeRE matches gRPC's message-size errors, sent or received.
var sizeRE = regexp.MustCompile(`message larger than max \((\d+) vs\. (\d+)\)`)

// connectError says why the client could not reach the cluster at all.
func connectError(c *cli.Context, ce *discovery.ConnectError) error {
	s, _ := settings(c)
	cause := ce.Cause()
	if errors.Is(ce, discovery.ErrUnreachable) {
		if i := strings.LastIndex(cause, ": "); i >= 0 {
			cause = cause[i+2:] // "connection refused", not which server said it last
		}
		return CodedError{ExitUnavailable, fmt.Errorf("no server reachable at %s: %s; is a cluster running? `proglogctl serve --dev` starts one on this machine", s.Addr, cause)}
	}
	why := cause
	switch {
	case strings.Contains(cause, "x509: certificate signed by unknown authority"):
		why = fmt.Sprintf("the server's certificate is not signed by the CA in --ca-file %s", s.CAFile)
	case strings.Contains(cause, "remote error: tls: unknown certificate authority"), strings.Contains(cause, "remote error: tls: bad certificate"):
		why = fmt.Sprintf("the server does not accept the client certificate %s (is it signed by the cluster's CA?)", s.CertFile)
	case strings.Contains(cause, "remote error: tls: expired certificate"):
		why = fmt.Sprintf("the server refused the client certificate %s: it has expired", s.CertFile)
	case strings.Contains(cause, "x509: certificate has expired or is not yet valid"):
		why = "the server's certificate has expired or is not yet valid (" + strings.TrimPrefix(cause, "tls: failed to verify certificate: ") + ")"
	case strings.Contains(cause, "x509: certificate is valid for"):
		why = "the server's certificate does not name the address dialed (" + strings.TrimPrefix(cause, "tls: failed to verify certificate: ") + ")"
	}
	return CodedError{ExitTLS, fmt.Errorf("TLS handshake with %s failed: %s", ce.Addr, why)}
}

// isTerminal reports whether w is a terminal, where output is styled.
func isTerminal(w io.Writer) bool {
	if t, ok := w.(interface{ Terminal() bool }); ok {
		return t.Terminal() // a test's stand-in for a terminal
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
