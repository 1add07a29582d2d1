package nodetest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/proglogctl/proglogctl/raftfsm/replica"
)

// DefaultDeadline is the bound StartNode and StartCluster give a test that
// has not armed one with Deadline: well under go test's default -timeout of
// 10 minutes, and far above what a test of a few nodes takes on a loaded
// machine with -race.
const DefaultDeadline = 3 * time.Minute

// DeadlineGrace is how long a test may go on after its deadline, failed,
// before the test binary panics with the goroutine dump taken at the
// deadline.
const DeadlineGrace = 30 * time.Second

// deadlineGrace is DeadlineGrace; this package's tests shorten it.
var deadlineGrace = DeadlineGrace

// ContextTimeout bounds the contexts Context returns.
const ContextTimeout = 30 * time.Second

// deadline is a test's bound. Its timer goroutine and the test's cleanup
// share mu.
type deadline struct {
	name   string
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	d       time.Duration
	timer   *time.Timer // the deadline
	hard    *time.Timer // the panic, once the deadline has passed
	stopped bool        // the test has ended
}

// deadlines maps a test's name to its *deadline while the test runs.
var deadlines sync.Map

// Deadline bounds the test t at d from now (a second call moves the bound).
// When it passes, the test fails with every goroutine's stack, WaitFor,
// Retry and the contexts of Context and of the returned context end (WaitFor
// and Retry fail the test), and DeadlineGrace later, if the test has still
// not ended, the test binary panics with the dump. Subtests share their
// parent's deadline unless they arm their own.
func Deadline(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	if v, ok := deadlines.Load(t.Name()); ok {
		dl := v.(*deadline)
		dl.mu.Lock()
		defer dl.mu.Unlock()
		if dl.ctx.Err() == nil && dl.timer.Stop() {
			dl.d = d
			dl.timer.Reset(d)
		}
		return dl.ctx
	}
	dl := &deadline{name: t.Name(), d: d}
	dl.ctx, dl.cancel = context.WithCancel(context.Background())
	dl.timer = time.AfterFunc(d, func() { dl.fire(t) })
	deadlines.Store(t.Name(), dl)
	t.Cleanup(func() {
		dl.mu.Lock()
		defer dl.mu.Unlock()
		dl.stopped = true
		dl.timer.Stop()
		if dl.hard != nil {
			dl.hard.Stop()
		}
		dl.cancel()
		deadlines.Delete(dl.name)
	})
	return dl.ctx
}

// EnsureDeadline arms DefaultDeadline unless t, or a test t is a subtest
// of, has a deadline, and returns the context that ends at the deadline.
// Helpers that start servers call it.
func EnsureDeadline(t testing.TB) context.Context {
	t.Helper()
	if dl := find(t); dl != nil {
		return dl.ctx
	}
	return Deadline(t, DefaultDeadline)
}

// fire fails the test with a goroutine dump, ends its waits and arms the
// panic.
func (dl *deadline) fire(t testing.TB) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if dl.stopped {
		return
	}
	dump := Goroutines()
	t.Errorf("nodetest: %s ran past its deadline of %v; every goroutine's stack:\n%s", dl.name, dl.d, dump)
	dl.cancel()
	grace := deadlineGrace
	dl.hard = time.AfterFunc(grace, func() {
		panic(fmt.Sprintf("nodetest: %s did not end within %v of its deadline of %v; goroutines at the deadline:\n%s",
			dl.name, grace, dl.d, dump))
	})
}

// find returns the deadline of t, or of the nearest test t is a subtest of.
func find(t testing.TB) *deadline {
	name := t.Name()
	for {
		if v, ok := deadlines.Load(name); ok {
			return v.(*deadline)
		}
		i := strings.LastIndexByte(name, '/')
		if i < 0 {
			return nil
		}
		name = name[:i]
	}
}

// deadlineDone is closed when t's deadline has passed (nil without one).
func deadlineDone(t testing.TB) <-chan struct{} {
	if dl := find(t); dl != nil {
		return dl.ctx.Done()
	}
	return nil
}

// Goroutines returns the stacks of every goroutine.
func Goroutines() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) || len(buf) >= 64<<20 {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}

// Context returns a context that ends after ContextTimeout, at the test's
// deadline, or when the test ends, whichever comes first.
func Context(t testing.TB) context.Context {
	parent := context.Background()
	if dl := find(t); dl != nil {
		parent = dl.ctx
	}
	ctx, cancel := context.WithTimeout(parent, ContextTimeout)
	t.Cleanup(cancel)
	return ctx
}

// pollInterval is how long WaitFor and Retry first wait between two tries;
// the wait doubles up to maxPollInterval, so a cheap condition is seen soon
// and an expensive one (a process to ask) is not asked in a busy loop.
const (
	pollInterval    = 5 * time.Millisecond
	maxPollInterval = 50 * time.Millisecond
)

// WaitFor checks cond until it holds, and fails the test if it does not
// within timeout (or by the test's deadline), saying what it waited for.
// It must be called from the test's goroutine.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := poll(t, timeout, func() (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("%v waiting for %s", err, what)
	}
}

// Retryable reports errors a client retries when leadership moves, which a
// loaded machine can cause at any time: Unavailable and raftfsm's
// NotLeaderError.
func Retryable(err error) bool {
	var nl *replica.NotLeaderError
	return status.Code(err) == codes.Unavailable || errors.As(err, &nl)
}

// Retry runs f until it returns nil, failing the test when f returns an
// error Retryable does not accept or timeout (or the test's deadline)
// passes. It must be called from the test's goroutine.
func Retry(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	var last error
	err := poll(t, timeout, func() (bool, error) {
		last = f()
		if last != nil && !Retryable(last) {
			return false, last
		}
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("giving up: %v (last error: %v)", err, last)
	}
}

// errDeadline says the test's deadline passed during a wait.
var errDeadline = errors.New("nodetest: the test's deadline passed")

// poll calls try until it reports done or an error, timeout passes or the
// test's deadline does.
func poll(t testing.TB, timeout time.Duration, try func() (bool, error)) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	dead := deadlineDone(t)
	for wait := pollInterval; ; wait = min(2*wait, maxPollInterval) {
		done, err := try()
		if done || err != nil {
			return err
		}
		tick := time.NewTimer(wait)
		select {
		case <-tick.C:
		case <-timer.C:
			tick.Stop()
			// One more try: the condition may have been met while waiting.
			if done, err := try(); done || err != nil {
				return err
			}
			return fmt.Errorf("timed out after %v", timeout)
		case <-dead:
			tick.Stop()
			return errDeadline
		}
	}
}

// WantCode fails the test unless err has the gRPC status code want.
func WantCode(t testing.TB, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("%s: got %v (%v), want %v", what, got, err, want)
	}
}
