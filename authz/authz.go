package authz

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	"github.com/casbin/casbin/v2/persist"
)

// Actions a client may be granted.
const (
	ActionProduce = "produce"
	ActionConsume = "consume"
)

// ObjectAny in a policy line matches every object.
const ObjectAny = "*"

// Names of the files WriteFiles writes into a directory.
const (
	ModelFileName  = "model.conf"
	PolicyFileName = "policy.csv"
)

// Model is the casbin model proglogctl uses, written to model.conf.
const Model = `# proglogctl access model (casbin).
# A request (subject, object, action) is allowed when a policy line names the
# subject and the action, and the object or "*". Everything else is denied.

[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.sub == p.sub && (p.obj == "*" || r.obj == p.obj) && r.act == p.act
`

// Errors returned by this package. Compare them with errors.Is.
var (
	ErrPermissionDenied = errors.New("authz: permission denied")
	ErrInvalidGrant     = errors.New("authz: invalid grant")
	ErrInvalidPolicy    = errors.New("authz: invalid policy")
)

// DeniedError is the error Authorize returns when the policy does not allow
// a request. It wraps ErrPermissionDenied.
type DeniedError struct {
	Subject string
	Object  string
	Action  string
}

// Error reads like `authz: client "nobody" may not produce`.
func (e *DeniedError) Error() string {
	msg := fmt.Sprintf("authz: client %q may not %s", e.Subject, e.Action)
	if e.Object != "" && e.Object != ObjectAny {
		msg += fmt.Sprintf(" on %q", e.Object)
	}
	return msg
}

// Unwrap returns ErrPermissionDenied.
func (e *DeniedError) Unwrap() error { return ErrPermissionDenied }

// ErrRefused wraps the reason Reload kept the model and policy in force.
var ErrRefused = errors.New("authz: new files refused, the model and policy loaded before stay in force")

// Authorizer answers whether a subject may take an action on an object. The
// model and policy in force are an enforcer swapped atomically by Reload
// (serialized by mu), so Authorize never waits for a Reload; the casbin
// enforcer takes its own read lock.
type Authorizer struct {
	modelFile, policyFile string

	mu       sync.Mutex // serializes Reload
	enforcer atomic.Pointer[casbin.SyncedEnforcer]
}

// New loads the casbin model in modelFile and the policy in policyFile.
// Errors name the file at fault.
func New(modelFile, policyFile string) (*Authorizer, error) {
	e, err := load(modelFile, policyFile)
	if err != nil {
		return nil, err
	}
	a := &Authorizer{modelFile: modelFile, policyFile: policyFile}
	a.enforcer.Store(e)
	return a, nil
}

// Reload reads the model and policy files again. When they load (as for New)
// every call authorized from now on is decided by them, and changes says what
// differs from before: a line per rule added or removed ("+ p, alice, *,
// produce"), and one if the model changed; none when nothing did. Otherwise
// the error wraps ErrRefused, names the file at fault, and the model and
// policy loaded before stay in force.
func (a *Authorizer) Reload() (changes []string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, err := load(a.modelFile, a.policyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	old := a.enforcer.Load()
	if old.GetModel().ToText() != e.GetModel().ToText() {
		changes = append(changes, fmt.Sprintf("model %s changed", a.modelFile))
	}
	oldRules, newRules := rules(old), rules(e)
	for _, r := range oldRules {
		if !slices.Contains(newRules, r) {
			changes = append(changes, fmt.Sprintf("policy %s: - %s", a.policyFile, r))
		}
	}
	for _, r := range newRules {
		if !slices.Contains(oldRules, r) {
			changes = append(changes, fmt.Sprintf("policy %s: + %s", a.policyFile, r))
		}
	}
	if len(changes) > 0 {
		a.enforcer.Store(e)
	}
	return changes, nil
}

// rules returns the policy lines of e as they read in a policy file.
func rules(e *casbin.SyncedEnforcer) []string {
	var out []string
	for _, sec := range []string{"p", "g"} {
		for ptype, ast := range e.GetModel()[sec] {
			for _, r := range ast.Policy {
				out = append(out, strings.Join(append([]string{ptype}, r...), ", "))
			}
		}
	}
	slices.Sort(out)
	return out
}

// load reads the model and the policy into a checked enforcer.
func load(modelFile, policyFile string) (*casbin.SyncedEnforcer, error) {
	modelText, err := readFile("model", modelFile)
	if err != nil {
		return nil, err
	}
	policyText, err := readFile("policy", policyFile)
	if err != nil {
		return nil, err
	}
	m, err := model.NewModelFromString(modelText)
	if err != nil {
		return nil, fmt.Errorf("authz: model %s: %w", modelFile, err)
	}
	e, err := casbin.NewSyncedEnforcer(m, &policyAdapter{path: policyFile, text: policyText})
	if err != nil {
		return nil, fmt.Errorf("authz: load policy %s with model %s: %w", policyFile, modelFile, err)
	}
	// A model whose request or matcher does not fit (subject, object,
	// action) would fail every call; fail now instead.
	if _, err := e.Enforce("", "", ""); err != nil {
		return nil, fmt.Errorf("authz: model %s cannot evaluate a (subject, object, action) request: %w", modelFile, err)
	}
	return e, nil
}

// Authorize returns nil if subject may take action on object, and otherwise
// an error: a *DeniedError, which wraps ErrPermissionDenied, or the error
// that stopped the policy from being evaluated. An empty subject is denied.
func (a *Authorizer) Authorize(subject, object, action string) error {
	if subject == "" {
		return &DeniedError{Subject: subject, Object: object, Action: action}
	}
	ok, err := a.enforcer.Load().Enforce(subject, object, action)
	if err != nil {
		return fmt.Errorf("authz: evaluate %q %s %q: %w", subject, action, object, err)
	}
	if !ok {
		return &DeniedError{Subject: subject, Object: object, Action: action}
	}
	return nil
}

func readFile(kind, path string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("authz: no %s file given", kind)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in our message already
		}
		return "", fmt.Errorf("authz: read %s file %s: %w", kind, path, err)
	}
	return string(data), nil
}

// policyAdapter loads a policy from text read earlier, reporting the line of
// a malformed rule (casbin's own loaders skip or panic on some).
type policyAdapter struct {
	path string
	text string
}

var _ persist.Adapter = (*policyAdapter)(nil)

var errReadOnly = errors.New("authz: the policy is read-only")

// LoadPolicy adds every rule of the text to m.
func (a *policyAdapter) LoadPolicy(m model.Model) error {
	for i, line := range strings.Split(a.text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := csv.NewReader(strings.NewReader(line))
		r.TrimLeadingSpace = true
		rule, err := r.Read()
		if err != nil {
			return fmt.Errorf("%w: %s line %d: %v", ErrInvalidPolicy, a.path, i+1, err)
		}
		for j := range rule {
			rule[j] = strings.TrimSpace(rule[j])
		}
		if len(rule) < 2 || (rule[0] != "p" && rule[0] != "g") {
			return fmt.Errorf("%w: %s line %d: want p, SUBJECT, OBJECT, ACTION", ErrInvalidPolicy, a.path, i+1)
		}
		if err := persist.LoadPolicyArray(rule, m); err != nil {
			return fmt.Errorf("%w: %s line %d: %v", ErrInvalidPolicy, a.path, i+1, err)
		}
	}
	return nil
}

// SavePolicy refuses: policies change by editing the file.
func (a *policyAdapter) SavePolicy(model.Model) error { return errReadOnly }

// AddPolicy refuses: policies change by editing the file.
func (a *policyAdapter) AddPolicy(string, string, []string) error { return errReadOnly }

// RemovePolicy refuses: policies change by editing the file.
func (a *policyAdapter) RemovePolicy(string, string, []string) error { return errReadOnly }

// RemoveFilteredPolicy refuses: policies change by editing the file.
func (a *policyAdapter) RemoveFilteredPolicy(string, string, int, ...string) error {
	return errReadOnly
}
