package authz

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Actions returns the actions a client may be granted, in the order policies
// list them.
func Actions() []string { return []string{ActionProduce, ActionConsume} }

// Grants maps a subject (a client certificate's common name) to the actions
// it may take on every object. A subject with no actions is denied
// everything, as is a subject not in the map.
type Grants map[string][]string

// DefaultGrants lets root produce and consume; nobody, like everyone else,
// may do nothing.
func DefaultGrants() Grants {
	return Grants{"root": {ActionProduce, ActionConsume}}
}

// subjectRE accepts the names certs issues certificates for, all of which
// are safe in a CSV policy line.
var subjectRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]*$`)

// Validate reports the first subject or action that cannot be granted; the
// error wraps ErrInvalidGrant.
func (g Grants) Validate() error {
	for _, s := range g.subjects() {
		if !subjectRE.MatchString(s) {
			return fmt.Errorf("%w: subject %q: use letters, digits and . _ @ - only", ErrInvalidGrant, s)
		}
		for _, a := range g[s] {
			if !slices.Contains(Actions(), a) {
				return fmt.Errorf("%w: %s: unknown action %q (want %s)", ErrInvalidGrant, s, a, strings.Join(Actions(), " or "))
			}
		}
	}
	return nil
}

func (g Grants) subjects() []string {
	ss := make([]string, 0, len(g))
	for s := range g {
		ss = append(ss, s)
	}
	slices.Sort(ss)
	return ss
}

// Policy renders g as the text of a casbin policy for Model: a comment,
// then one line per subject and action, subjects sorted, so the same grants
// always give the same bytes.
func (g Grants) Policy() ([]byte, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("# proglogctl access policy (casbin), read with " + ModelFileName + ".\n")
	b.WriteString("# One permission per line: p, SUBJECT, OBJECT, ACTION. SUBJECT is the common\n")
	b.WriteString("# name of a client certificate, OBJECT * means every log, ACTION is\n")
	b.WriteString("# " + strings.Join(Actions(), " or ") + ". Whatever is not listed is denied.\n")
	for _, s := range g.subjects() {
		for _, a := range Actions() {
			if slices.Contains(g[s], a) {
				fmt.Fprintf(&b, "p, %s, %s, %s\n", s, ObjectAny, a)
			}
		}
	}
	return []byte(b.String()), nil
}

// WriteFiles writes Model to dir/model.conf and the policy of g to
// dir/policy.csv, creating dir with mode 0700 if needed, and returns the
// paths written. Unless force is set it writes neither file if either exists;
// the error then wraps fs.ErrExist and names the file.
func WriteFiles(dir string, g Grants, force bool) ([]string, error) {
	if dir == "" {
		return nil, errors.New("authz: no directory given")
	}
	policy, err := g.Policy()
	if err != nil {
		return nil, err
	}
	files := []struct {
		path string
		data []byte
	}{
		{filepath.Join(dir, ModelFileName), []byte(Model)},
		{filepath.Join(dir, PolicyFileName), policy},
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("authz: create directory: %w", err)
	}
	if !force {
		for _, f := range files {
			if _, err := os.Lstat(f.path); err == nil {
				return nil, existsError(f.path)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("authz: %w", err)
			}
		}
	}
	var written []string
	for _, f := range files {
		if err := writeFile(f.path, f.data, 0o644, force); err != nil {
			return written, err
		}
		written = append(written, f.path)
	}
	return written, nil
}

// existsError is the error for refusing to replace path.
func existsError(path string) error {
	return fmt.Errorf("authz: %w", &fs.PathError{Op: "write", Path: path, Err: fs.ErrExist})
}

// writeFile writes data to path with mode perm through a synced temporary
// file in the same directory, then renames it into place (force) or links it
// there, which fails if path exists (no force), and syncs the directory.
func writeFile(path string, data []byte, perm fs.FileMode, force bool) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("authz: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("authz: write %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("authz: write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("authz: write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("authz: write %s: %w", path, err)
	}
	if force {
		if err = os.Rename(tmp, path); err != nil {
			return fmt.Errorf("authz: write %s: %w", path, err)
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
	if _, err := os.Lstat(path); err == nil {
		return existsError(path)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("authz: write %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("authz: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("authz: sync %s: %w", dir, err)
	}
	return nil
}
