package commands

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// timeField matches the time of a record in -o json.
var timeField = regexp.MustCompile(`"time":"([^"]*)"`)

// maskTimes replaces each record's time in -o json output with TIME, after
// checking it is an RFC 3339 time in UTC, so that golden files hold the rest.
func maskTimes(t testing.TB, out string) string {
	t.Helper()
	return timeField.ReplaceAllStringFunc(out, func(m string) string {
		v := timeField.FindStringSubmatch(m)[1]
		if ts, err := time.Parse(time.RFC3339Nano, v); err != nil || !strings.HasSuffix(v, "Z") || ts.IsZero() {
			t.Errorf("record time %q is not an RFC 3339 time in UTC: %v", v, err)
		}
		return `"time":"TIME"`
	})
}

// runAt is runIn with the commands' clock at now.
func runAt(t testing.TB, now time.Time, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut strings.Builder
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Version: "test", now: func() time.Time { return now }}
	err = m.Run(context.Background(), append([]string{"proglogctl"}, args...))
	return out.String(), errOut.String(), err
}

// TestConsumeByTime: consume --since and --from-time, and tail --since,
// start at the first record produced after a time noted between two
// produces; -o json shows each record's time.
func TestConsumeByTime(t *testing.T) {
	startDev(t, 3)
	mustRun(t, "", "produce", "old-0", "old-1")
	mid := time.Now()
	mustRun(t, "", "produce", "new-0", "new-1")
	mustRun(t, "", "produce", "new-2")
	after := time.Now()
	const fromMid = "2\tnew-0\n3\tnew-1\n4\tnew-2\n"

	for _, tc := range []struct {
		name string
		now  time.Time
		args []string
		want string
	}{
		{"since 10m, 10m after mid", mid.Add(10 * time.Minute), []string{"consume", "--since", "10m"}, fromMid},
		{"since 1h", after, []string{"consume", "--since", "1h"}, "0\told-0\n1\told-1\n" + fromMid},
		{"since after every record", after.Add(time.Hour), []string{"consume", "--since", "1m"}, ""},
		{"from-time mid", after, []string{"consume", "--from-time", mid.Format(time.RFC3339Nano)}, fromMid},
		{"from-time mid in another zone", after, []string{"consume", "--from-time", mid.In(time.FixedZone("", -5*3600)).Format(time.RFC3339Nano)}, fromMid},
		{"from-time before the log", after, []string{"consume", "--from-time", "2000-01-01T00:00:00Z"}, "0\told-0\n1\told-1\n" + fromMid},
		{"from-time after every record", after, []string{"consume", "--from-time", after.Add(time.Second).Format(time.RFC3339)}, ""},
		{"from-time mid with count", after, []string{"consume", "--from-time", mid.Format(time.RFC3339Nano), "-n", "1"}, "2\tnew-0\n"},
		{"from-time mid with to", after, []string{"consume", "--from-time", mid.Format(time.RFC3339Nano), "--to", "4"}, "2\tnew-0\n3\tnew-1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := runAt(t, tc.now, tc.args...)
			if err != nil || out != tc.want {
				t.Fatalf("proglogctl %s: %q, %v (stderr %q); want %q", strings.Join(tc.args, " "), out, err, errOut, tc.want)
			}
		})
	}

	t.Run("json times", func(t *testing.T) {
		out, _, err := runAt(t, after, "consume", "--from-time", mid.Format(time.RFC3339Nano), "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 3 {
			t.Fatalf("got %q, want 3 lines", out)
		}
		var prev time.Time
		for i, l := range lines {
			m := timeField.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("line %q has no time", l)
			}
			ts, err := time.Parse(time.RFC3339Nano, m[1])
			if err != nil || ts.Before(mid) || ts.After(after) || ts.Before(prev) {
				t.Fatalf("line %d time %q (%v): want from %v to %v, not below the line before", i, m[1], err, mid, after)
			}
			prev = ts
		}
		if want := `{"offset":2,"time":"TIME","value":"new-0"}`; maskTimes(t, lines[0]) != want {
			t.Fatalf("line %q, want %s", lines[0], want)
		}
	})

	t.Run("tail since", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		out := newSyncBuffer()
		done := make(chan error, 1)
		go func() {
			m := &Main{Stdin: strings.NewReader(""), Stdout: out, Stderr: logWriter(t), now: func() time.Time { return mid.Add(10 * time.Minute) }}
			done <- m.Run(ctx, []string{"proglogctl", "tail", "--since", "10m"})
		}()
		stop := sync.OnceValue(func() error { cancel(); return <-done })
		defer stop()
		waitFor(t, 10*time.Second, "tail --since to print the records from mid on", func() bool {
			return out.String() == fromMid
		})
		mustRun(t, "", "produce", "new-3")
		waitFor(t, 10*time.Second, "tail --since to print the record produced after it started", func() bool {
			return out.String() == fromMid+"5\tnew-3\n"
		})
		if err := stop(); err != nil {
			t.Errorf("tail interrupted: %v, want a clean exit", err)
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"consume", "--from", "1", "--since", "1m"},
			{"consume", "--from-time", mid.Format(time.RFC3339), "--since", "1m"},
			{"tail", "--since", "1m", "--from", "3"},
			{"consume", "--since", "0s"},
			{"consume", "--from-time", fmt.Sprint(mid.Unix())},
		} {
			_, _, err := runIn(t, "", args...)
			if ExitCode(err) != ExitUsage {
				t.Errorf("proglogctl %s: %v (exit %d), want a usage error", strings.Join(args, " "), err, ExitCode(err))
			}
		}
	})
}
