package nodetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeTB records what a helper reports; its Fatal ends the goroutine, as
// testing's does. Run helpers on it with run.
type fakeTB struct {
	testing.TB // the real test, for the methods not overridden
	name       string

	mu       sync.Mutex
	errors   []string // Errorf and Fatalf messages
	fatal    bool
	cleanups []func()
}

func newFake(t *testing.T, name string) *fakeTB { return &fakeTB{TB: t, name: name} }

func (f *fakeTB) Helper()      {}
func (f *fakeTB) Name() string { return f.name }

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	f.mu.Lock()
	f.fatal = true
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

// end runs the cleanups, last first, as testing does when a test ends.
func (f *fakeTB) end() {
	f.mu.Lock()
	cs := f.cleanups
	f.cleanups = nil
	f.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

func (f *fakeTB) report() (errs string, fatal bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.errors, "\n"), f.fatal
}

// run runs body as a test body on f and waits, at most within, for it to
// return or fail.
func run(t *testing.T, f *fakeTB, within time.Duration, body func(tb testing.TB)) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		body(f)
	}()
	select {
	case <-done:
	case <-time.After(within):
		t.Fatalf("the helper did not return or fail within %v", within)
	}
}

func TestWaitFor(t *testing.T) {
	t.Run("holds", func(t *testing.T) {
		f := newFake(t, "TestX")
		calls := 0
		run(t, f, 10*time.Second, func(tb testing.TB) {
			WaitFor(tb, 5*time.Second, "the third call", func() bool { calls++; return calls == 3 })
		})
		if errs, fatal := f.report(); fatal || errs != "" || calls != 3 {
			t.Fatalf("WaitFor on a condition met at the third call: %d calls, failed %v %q", calls, fatal, errs)
		}
	})
	t.Run("times out saying what it waited for", func(t *testing.T) {
		f := newFake(t, "TestX")
		start := time.Now()
		run(t, f, 10*time.Second, func(tb testing.TB) {
			WaitFor(tb, 100*time.Millisecond, "the moon", func() bool { return false })
		})
		errs, fatal := f.report()
		if !fatal || errs != "timed out after 100ms waiting for the moon" {
			t.Fatalf("WaitFor of a condition never met: fatal %v, %q; want a fatal naming the timeout and what", fatal, errs)
		}
		if took := time.Since(start); took < 100*time.Millisecond || took > 5*time.Second {
			t.Fatalf("WaitFor with a 100ms timeout failed after %v", took)
		}
	})
}

func TestRetry(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "no leader")
	t.Run("retryable then nil", func(t *testing.T) {
		f := newFake(t, "TestX")
		calls := 0
		run(t, f, 10*time.Second, func(tb testing.TB) {
			Retry(tb, 5*time.Second, func() error {
				if calls++; calls < 3 {
					return unavailable
				}
				return nil
			})
		})
		if errs, fatal := f.report(); fatal || calls != 3 {
			t.Fatalf("Retry of two Unavailable then nil: %d calls, failed %v %q", calls, fatal, errs)
		}
	})
	t.Run("other error fails at once", func(t *testing.T) {
		f := newFake(t, "TestX")
		calls := 0
		run(t, f, 10*time.Second, func(tb testing.TB) {
			Retry(tb, 5*time.Second, func() error { calls++; return errors.New("denied") })
		})
		if errs, fatal := f.report(); !fatal || calls != 1 || !strings.Contains(errs, "denied") {
			t.Fatalf("Retry of a non-retryable error: %d calls, fatal %v %q; want one call and a fatal naming it", calls, fatal, errs)
		}
	})
	t.Run("retryable until the timeout", func(t *testing.T) {
		f := newFake(t, "TestX")
		run(t, f, 10*time.Second, func(tb testing.TB) {
			Retry(tb, 100*time.Millisecond, func() error { return unavailable })
		})
		if errs, fatal := f.report(); !fatal || !strings.Contains(errs, "timed out after 100ms") || !strings.Contains(errs, "no leader") {
			t.Fatalf("Retry past its timeout: fatal %v %q; want a fatal naming the timeout and the last error", fatal, errs)
		}
	})
}

// hungFunction is a frame the goroutine dump must show.
func hungFunction(ctx context.Context) { <-ctx.Done() }

// A test past its deadline fails with every goroutine's stack, its waits end
// with a failure, and its subtests' contexts end; a test that ends in time
// is not failed later.
func TestDeadline(t *testing.T) {
	t.Run("fires", func(t *testing.T) {
		f := newFake(t, "TestHung")
		defer f.end()
		hung, cancel := context.WithCancel(context.Background())
		defer cancel()
		go hungFunction(hung)
		start := time.Now()
		run(t, f, 20*time.Second, func(tb testing.TB) {
			Deadline(tb, 200*time.Millisecond)
			WaitFor(tb, time.Minute, "what never comes", func() bool { return false })
		})
		took := time.Since(start)
		errs, fatal := f.report()
		for _, want := range []string{
			"nodetest: TestHung ran past its deadline of 200ms; every goroutine's stack:",
			"nodetest.hungFunction(",
			"the test's deadline passed waiting for what never comes",
		} {
			if !strings.Contains(errs, want) {
				t.Errorf("reported %q; want it to contain %q", errs, want)
			}
		}
		if !fatal || took > 10*time.Second {
			t.Errorf("WaitFor of a minute ended after %v (fatal %v); want it ended by the 200ms deadline", took, fatal)
		}
		sub := newFake(t, "TestHung/sub")
		select {
		case <-Context(sub).Done():
		default:
			t.Error("a subtest's Context is not done after its parent's deadline")
		}
		sub.end()
	})
	t.Run("moved and stopped", func(t *testing.T) {
		f := newFake(t, "TestQuick")
		ctx := Deadline(f, time.Hour)
		if EnsureDeadline(f) != ctx {
			t.Fatal("EnsureDeadline armed a second deadline")
		}
		Deadline(f, 100*time.Millisecond)
		WaitFor(t, 10*time.Second, "the moved deadline to pass", func() bool { return ctx.Err() != nil })
		f.end()
		if _, ok := deadlines.Load("TestQuick"); ok {
			t.Fatal("the deadline outlived its test")
		}
		ended := newFake(t, "TestEnded")
		Deadline(ended, 50*time.Millisecond)
		ended.end()
		later := newFake(t, "TestLater")
		defer later.end()
		lctx := Deadline(later, 200*time.Millisecond)
		WaitFor(t, 10*time.Second, "a later deadline to pass", func() bool { return lctx.Err() != nil })
		if errs, _ := ended.report(); errs != "" {
			t.Fatalf("a test that ended before its deadline was failed: %q", errs)
		}
	})
}

// A test that goes on past its deadline and the grace after it ends the
// test binary with a panic that names it and dumps the goroutines.
func TestDeadlinePanicsPastGrace(t *testing.T) {
	if os.Getenv("NODETEST_HANG") == "1" {
		deadlineGrace = 100 * time.Millisecond
		Deadline(t, 100*time.Millisecond)
		hungFunction(context.Background()) // never returns
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestDeadlinePanicsPastGrace$", "-test.v")
	cmd.Env = append(os.Environ(), "NODETEST_HANG=1")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the hung test still ran after 30 s:\n%s", out)
	}
	for _, want := range []string{
		"panic: nodetest: TestDeadlinePanicsPastGrace did not end within 100ms of its deadline of 100ms",
		"nodetest.hungFunction(",
	} {
		if err == nil || !strings.Contains(string(out), want) {
			t.Fatalf("hung test: %v; want a panic containing %q; output:\n%s", err, want, out)
		}
	}
}
