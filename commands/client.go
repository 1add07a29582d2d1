package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
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
	ExitUnavailable = 3 // no server reachable, or no leader
	ExitDenied      = 4 // not authenticated, or not allowed
	ExitOutOfRange  = 5 // an offset outside the log
)

// clusterFile, in the config directory, holds the address `serve --dev` runs
// its cluster on; client commands dial it when --addr is not given.
const clusterFile = "cluster"

// defaultAddr is the cluster address client commands use without --addr.
const defaultAddr = discovery.Scheme + "://127.0.0.1:8400"

// clusterAddr is the cluster the client flags name: --addr, else the address
// `serve --dev` wrote into the config directory, else defaultAddr.
func clusterAddr(c *cli.Context) string {
	if a := c.String("addr"); a != "" {
		return a
	}
	if dir := c.String("config-dir"); dir != "" {
		if b, err := os.ReadFile(filepath.Join(dir, clusterFile)); err == nil {
			if a := strings.TrimSpace(string(b)); a != "" {
				return a
			}
		}
	}
	return defaultAddr
}

// clientFlags are the flags every client command takes.
func clientFlags() []cli.Flag {
	return []cli.Flag{
		configDirFlag(),
		&cli.StringFlag{Name: "addr", Usage: "cluster to talk to: proglog://host:port[,host:port...] (default: the dev cluster's address in --config-dir, else " + defaultAddr + ")", EnvVars: []string{"PROGLOG_ADDR"}},
		&cli.StringFlag{Name: "ca-file", Usage: "CA certificate servers are verified against" + defaultIn(certs.CACertFileName), EnvVars: []string{"PROGLOG_CA_FILE"}, TakesFile: true},
		&cli.StringFlag{Name: "cert-file", Usage: "client certificate (its subject is who you are to the ACL)" + defaultIn(certs.ClientCertFileName(certs.RootSubject)), EnvVars: []string{"PROGLOG_CERT_FILE"}, TakesFile: true},
		&cli.StringFlag{Name: "key-file", Usage: "client key" + defaultIn(certs.ClientKeyFileName(certs.RootSubject)), EnvVars: []string{"PROGLOG_KEY_FILE"}, TakesFile: true},
		&cli.StringSliceFlag{Name: "connect-to", Usage: "connect to `HOST:PORT=HOST2:PORT2` when the cluster names a server HOST:PORT (repeatable; the server is still verified as HOST), for servers whose addresses do not resolve here, such as containers with published ports", EnvVars: []string{"PROGLOG_CONNECT_TO"}},
		&cli.DurationFlag{Name: "timeout", Usage: "how long one request (or a read, for each record) may wait for a server (or the leader) to answer", Value: 10 * time.Second, EnvVars: []string{"PROGLOG_TIMEOUT"}},
	}
}

// callCtx bounds one request by --timeout.
func callCtx(c *cli.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Context, c.Duration("timeout"))
}

// dial connects to the cluster the client flags name.
func dial(c *cli.Context) (*discovery.Client, error) {
	var f certs.TLSFiles
	for _, p := range []struct {
		to         *string
		flag, name string
	}{
		{&f.CAFile, "ca-file", certs.CACertFileName},
		{&f.CertFile, "cert-file", certs.ClientCertFileName(certs.RootSubject)},
		{&f.KeyFile, "key-file", certs.ClientKeyFileName(certs.RootSubject)},
	} {
		var err error
		if *p.to, err = inConfigDir(c, p.flag, p.name); err != nil {
			return nil, err
		}
	}
	tlsConf, err := certs.ClientTLSConfig(f)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("client credentials: %w (gencert writes them into --config-dir; set --config-dir, PROGLOG_CONFIG_DIR or the file flags to where they are)", err)
	} else if err != nil {
		return nil, fmt.Errorf("client credentials: %w", err)
	}
	var opts []grpc.DialOption
	if to, err := connectTo(nonEmpty(c.StringSlice("connect-to"))); err != nil {
		return nil, err
	} else if len(to) > 0 {
		opts = append(opts, discovery.ConnectTo(to))
	}
	cl, err := discovery.Dial(clusterAddr(c), tlsConf, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot dial %s: %w", clusterAddr(c), err)
	}
	// Reads are bounded by --timeout too: between records, not in all.
	cl.SetAnswerTimeout(c.Duration("timeout"))
	return cl, nil
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

// callError turns an error of a call to the cluster into what a person should
// read, with an exit code scripts can rely on.
func callError(c *cli.Context, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	// Drop the package prefixes servers put on their messages.
	for _, p := range []string{"node: ", "authz: ", "logstore: ", "raftfsm: ", "discovery: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	switch st.Code() {
	case codes.PermissionDenied:
		return CodedError{ExitDenied, fmt.Errorf("permission denied: %s", strings.ReplaceAll(msg, `"`, "'"))}
	case codes.Unauthenticated:
		return CodedError{ExitDenied, fmt.Errorf("not authenticated: %s", msg)}
	case codes.OutOfRange:
		return CodedError{ExitOutOfRange, errors.New(msg)}
	case codes.Unavailable, codes.DeadlineExceeded:
		return CodedError{ExitUnavailable, fmt.Errorf("no server reachable at %s: %s", clusterAddr(c), msg)}
	case codes.InvalidArgument:
		return CodedError{ExitError, fmt.Errorf("refused: %s", msg)}
	}
	return CodedError{ExitError, fmt.Errorf("%s: %s", st.Code(), msg)}
}

// isTerminal reports whether w is a terminal, where output is styled.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
