package node

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"github.com/proglogctl/proglogctl/raftfsm/replica"
)

// ErrDataDir wraps every reason New refuses its data directory; the message
// names the directory and what to do.
var ErrDataDir = errors.New("node: bad data directory")

// Names in a data directory (raftfsm's layout).
var dataSubdirs = []string{"raft", "log", "snapshots", "scratch"}

// dataDir is the data directory New was given, as New found it.
type dataDir struct {
	path string
	// existed: the directory was there; empty: it held nothing. A start
	// that fails removes what it made in a directory it found missing or
	// empty, so the next start finds it as the first did.
	existed, empty bool
}

// checkDataDir makes sure path is a directory the node can use: created if
// missing, writable, and either empty or holding a replica that got as far
// as its Raft state (r.CheckDir). Errors wrap ErrDataDir.
func checkDataDir(path string, r replica.Config) (dataDir, error) {
	d := dataDir{path: path}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, syscall.ENOTDIR):
		return d, fmt.Errorf("%w: cannot create %s: a path above it is a file, not a directory; give another directory", ErrDataDir, path)
	case err != nil:
		return d, fmt.Errorf("%w: %s: %v", ErrDataDir, path, unwrapPath(err))
	case fi.Mode().IsRegular():
		return d, fmt.Errorf("%w: %s is a file, not a directory: give a directory, or move the file away", ErrDataDir, path)
	case !fi.IsDir():
		return d, fmt.Errorf("%w: %s is not a directory (%v): give a directory", ErrDataDir, path, fi.Mode().Type())
	default:
		d.existed = true
		entries, err := os.ReadDir(path)
		if err != nil {
			return d, fmt.Errorf("%w: %s cannot be read: %v: make it readable and writable by the user running the node", ErrDataDir, path, unwrapPath(err))
		}
		d.empty = len(entries) == 0
	}
	if !d.existed {
		if err := os.MkdirAll(path, 0o755); err != nil {
			return d, fmt.Errorf("%w: cannot create %s: %v: create it, writable by the user running the node, or give another directory", ErrDataDir, path, unwrapPath(err))
		}
	}
	dirs := []string{path}
	for _, sub := range dataSubdirs {
		p := filepath.Join(path, sub)
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			dirs = append(dirs, p)
		} else if err == nil {
			return d, fmt.Errorf("%w: %s is not a directory: it is not a data directory of this program; give another directory", ErrDataDir, p)
		}
	}
	for _, dir := range dirs {
		f, err := os.CreateTemp(dir, ".write-check-*")
		if err != nil {
			return d, fmt.Errorf("%w: %s is not writable: %v: make it writable by the user running the node (chown/chmod), or give another directory", ErrDataDir, dir, unwrapPath(err))
		}
		f.Close()
		os.Remove(f.Name())
	}
	if err := r.CheckDir(path); err != nil {
		return d, fmt.Errorf("%w: %s", ErrDataDir, withoutPackage(err.Error()))
	}
	return d, nil
}

// undo removes what a failed start made in d: all of it if d was missing or
// empty before, so that the next start finds it as this one did; nothing
// otherwise.
func (d dataDir) undo() error {
	switch {
	case !d.existed:
		return os.RemoveAll(d.path)
	case d.empty:
		entries, err := os.ReadDir(d.path)
		if err != nil {
			return err
		}
		var errs []error
		for _, e := range entries {
			errs = append(errs, os.RemoveAll(filepath.Join(d.path, e.Name())))
		}
		return errors.Join(errs...)
	}
	return nil
}

// checkGossipAddr fails if Serf could not bind addr (TCP and UDP), before
// New makes anything in the data directory. A port of 0 is not checked.
func checkGossipAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "0" {
		return nil // Validate reported a bad address already
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return listenError("gossip address", addr, err)
	}
	ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return listenError("gossip address", addr, err)
	}
	pc.Close()
	return nil
}

// listenError is the error of a port New could not listen on, with what to
// do when another process has it.
func listenError(what, addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("node: %s %s: %w (another node or program listens there: stop it, or use another port)", what, addr, err)
	}
	return fmt.Errorf("node: %s %s: %w", what, addr, err)
}

// unwrapPath drops the *fs.PathError around err: messages here name the
// path already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}
