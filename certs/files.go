package certs

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cloudflare/cfssl/helpers"
)

// File modes: certificates are public, keys are for the owner only.
const (
	certPerm fs.FileMode = 0o644
	keyPerm  fs.FileMode = 0o600
)

// readFile reads a file of the given kind ("CA", "key", ...) and names both in
// the error.
func readFile(kind, path string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: no %s file given", ErrInvalidConfig, kind)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in our message already
		}
		return nil, fmt.Errorf("certs: read %s file %s: %w", kind, path, err)
	}
	return data, nil
}

// certificates returns every certificate in the PEM data read from path.
func certificates(data []byte, path string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certs: parse certificate in %s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoCertificate, path)
	}
	return out, nil
}

// firstCertificate returns the first certificate in the PEM data read from
// path.
func firstCertificate(data []byte, path string) (*x509.Certificate, error) {
	cs, err := certificates(data, path)
	if err != nil {
		return nil, err
	}
	return cs[0], nil
}

// privateKey parses the PEM private key read from path.
func privateKey(data []byte, path string) (crypto.Signer, error) {
	found := false
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			found = true
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("%w in %s", ErrNoKey, path)
	}
	key, err := helpers.ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("certs: parse key in %s: %w", path, err)
	}
	return key, nil
}

// exists reports whether something is at path.
func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("certs: %w", err)
	}
}

// existsError is the error for refusing to replace path.
func existsError(path string) error {
	return fmt.Errorf("certs: %w", &fs.PathError{Op: "write", Path: path, Err: fs.ErrExist})
}

// WriteFile writes data to path with mode perm through a synced temporary
// file in the same directory, then renames it into place (force) or links it
// there, which fails if path exists (no force), and syncs the directory. It is
// how proglogctl writes every certificate, key and ACL file: a crash never
// leaves one half written.
func WriteFile(path string, data []byte, perm fs.FileMode, force bool) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if force {
		if err = os.Rename(tmp, path); err != nil {
			return fmt.Errorf("certs: write %s: %w", path, err)
		}
	} else if err = placeNew(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// placeNew moves tmp to path unless path exists. A hard link makes the check
// atomic; where links are not supported it falls back to check, then rename.
func placeNew(tmp, path string) error {
	err := os.Link(tmp, path)
	switch {
	case err == nil:
		return os.Remove(tmp)
	case errors.Is(err, fs.ErrExist):
		return existsError(path)
	}
	there, lerr := exists(path)
	if lerr != nil {
		return lerr
	}
	if there {
		return existsError(path)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("certs: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("certs: sync %s: %w", dir, err)
	}
	return nil
}
