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

	"github.com/proglogctl/proglogctl/certs"
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
				return nil, fmt.Errorf("authz: %w", &fs.PathError{Op: "write", Path: f.path, Err: fs.ErrExist})
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("authz: %w", err)
			}
		}
	}
	var written []string
	for _, f := range files {
		if err := certs.WriteFile(f.path, f.data, 0o644, force); err != nil {
			return written, err
		}
		written = append(written, f.path)
	}
	return written, nil
}
