package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proglogctl/proglogctl/certs"
)

// fakeTerminal is a stdout that says it is a terminal.
type fakeTerminal struct{ bytes.Buffer }

func (*fakeTerminal) Terminal() bool { return true }

// runTo runs the CLI in-process writing stdout to out.
func runTo(t testing.TB, out io.Writer, stdin string, args ...string) (stderr string, err error) {
	t.Helper()
	var errOut bytes.Buffer
	m := &Main{Stdin: strings.NewReader(stdin), Stdout: out, Stderr: &errOut, Version: "test"}
	err = m.Run(context.Background(), append([]string{"proglogctl"}, args...))
	return errOut.String(), err
}

// TestClientCommandsGolden drives the client commands' new edges against a
// one-node dev cluster: output formats, resuming, control characters, CRs,
// delimiters and profiles. Its steps share one log and run in order.
func TestClientCommandsGolden(t *testing.T) {
	c := startDev(t, 1)
	dir, err := ConfigDir()
	if err != nil {
		t.Fatal(err)
	}
	tidy := func(s string) string {
		return strings.ReplaceAll(strings.ReplaceAll(s, dir, "CONFIG"), c.addrs[0], "ADDR")
	}

	// -o on every client command, --json its alias.
	// A producer id of the test's own: the profile's is random.
	golden(t, "cli_produce_o_json", mustRun(t, "", "produce", "-o", "json", "--producer-id", "golden", "one", "two"))
	golden(t, "cli_produce_json_alias", mustRun(t, "", "produce", "--json", "--producer-id", "golden", "three"))
	golden(t, "cli_produce_o_raw", mustRun(t, "", "produce", "-o", "raw", "four"))
	golden(t, "cli_consume_json_alias", maskTimes(t, mustRun(t, "", "consume", "--json", "--from", "2")))
	golden(t, "cli_servers_o_json", tidy(mustRun(t, "", "servers", "-o", "json")))

	// A trailing CR stays part of the record unless --strip-cr.
	mustRun(t, "cr\r\nplain\n", "produce", "-q")
	mustRun(t, "crlf\r\n", "produce", "-q", "--strip-cr")
	if got, want := mustRun(t, "", "consume", "--from", "4", "-o", "raw"), "cr\r\nplain\ncrlf\n"; got != want {
		t.Errorf("consume -o raw after CR lines = %q, want %q", got, want)
	}

	// Control characters are escaped in text on a terminal, not in a pipe
	// and never in raw.
	mustRun(t, "", "produce", "\x1b[2Jcleared\x07", "tab\there")
	var term fakeTerminal
	if _, err := runTo(t, &term, "", "consume", "--from", "7"); err != nil {
		t.Fatal(err)
	}
	golden(t, "cli_consume_terminal", term.String())
	if got, want := mustRun(t, "", "consume", "--from", "7"), "7\t\x1b[2Jcleared\x07\n8\ttab\there\n"; got != want {
		t.Errorf("consume to a pipe = %q, want the bytes %q", got, want)
	}
	term.Reset()
	if _, err := runTo(t, &term, "", "consume", "--from", "7", "-o", "raw"); err != nil {
		t.Fatal(err)
	}
	if got, want := term.String(), "\x1b[2Jcleared\x07\ntab\there\n"; got != want {
		t.Errorf("consume -o raw to a terminal = %q, want the bytes %q", got, want)
	}

	// Where a read starts when --from is before the log, and where a
	// follower resumes.
	out, errOut, err := runIn(t, "", "consume", "--from", "-5000", "-n", "2")
	golden(t, "cli_consume_from_before_log", result(out, errOut, err))
	out, errOut, err = runIn(t, "", "consume", "--from", "8", "--follow", "-n", "1")
	golden(t, "cli_consume_follow_count", result(out, errOut, err))
	out, errOut, err = runIn(t, "", "tail", "--from", "-2", "-n", "0")
	exitError(t, err, ExitUsage, "tail: --from and --lines: choose one")

	t.Run("profiles", func(t *testing.T) {
		golden(t, "cli_profile_list_dev", tidy(mustRun(t, "", "profile", "list")))
		golden(t, "cli_profile_add", tidy(mustRun(t, "", "profile", "add", "nowhere", "--addr", "proglog://127.0.0.1:1",
			"--ca-file", filepath.Join(dir, certs.CACertFileName),
			"--cert-file", filepath.Join(dir, certs.ClientCertFileName(certs.NobodySubject)),
			"--key-file", filepath.Join(dir, certs.ClientKeyFileName(certs.NobodySubject)))))
		golden(t, "cli_profile_list_json", tidy(mustRun(t, "", "profile", "list", "-o", "json")))

		// The current profile (dev) serves; --profile and PROGLOG_PROFILE
		// pick another; flags beat the profile.
		mustRun(t, "", "consume", "-n", "1")
		_, _, err := runIn(t, "", "consume", "-n", "1", "--profile", "nowhere")
		exitError(t, err, ExitUnavailable, "no server reachable at proglog://127.0.0.1:1: connection refused")
		t.Setenv("PROGLOG_PROFILE", "nowhere")
		_, _, err = runIn(t, "", "consume", "-n", "1")
		exitError(t, err, ExitUnavailable, "no server reachable at proglog://127.0.0.1:1")
		// nowhere's certificate is nobody's: with --addr the profile
		// still gives the credentials.
		_, _, err = runIn(t, "", "consume", "-n", "1", "--addr", c.addrs[0])
		exitError(t, err, ExitDenied, "permission denied: client 'nobody' may not consume")
		mustRun(t, "", "consume", "-n", "1", "--addr", c.addrs[0],
			"--cert-file", filepath.Join(dir, certs.ClientCertFileName(certs.RootSubject)),
			"--key-file", filepath.Join(dir, certs.ClientKeyFileName(certs.RootSubject)))
		t.Setenv("PROGLOG_PROFILE", "")
		os.Unsetenv("PROGLOG_PROFILE")

		golden(t, "cli_profile_use", mustRun(t, "", "profile", "use", "nowhere"))
		_, _, err = runIn(t, "", "consume", "-n", "1")
		exitError(t, err, ExitUnavailable, "no server reachable at proglog://127.0.0.1:1")
		_, _, err = runIn(t, "", "consume", "--profile", "nowher")
		exitError(t, err, ExitUsage, `no profile "nowher" (did you mean nowhere?)`)
		_, _, err = runIn(t, "", "profile", "add", "bad", "--addr", "proglog://x", "--ca-file", "a", "--cert-file", "b", "--key-file", "c")
		exitError(t, err, ExitUsage, `profile add: --addr "proglog://x": want proglog://host:port`)
		_, _, err = runIn(t, "", "profile", "add", "bad", "--addr", "h:1", "--ca-file", "no-such-ca.pem", "--cert-file", "b", "--key-file", "c")
		exitError(t, err, ExitError, "profile add: --ca-file: stat")
		mustRun(t, "", "profile", "use", "dev")
		golden(t, "cli_profile_remove", mustRun(t, "", "profile", "remove", "nowhere"))
		if got := mustRun(t, "", "profile", "list", "-o", "table"); !strings.Contains(got, "│ * │ dev  │ "+c.addrs[0]) && !strings.Contains(got, "│ * │ dev  │ proglog://"+c.addrs[0]) {
			t.Errorf("profile list -o table lacks the current dev profile:\n%s", got)
		}
	})
}

// randomRecords returns n records of random bytes (0 to 2,000 of them)
// none of which contains delim.
func randomRecords(r *rand.Rand, n int, delim []byte) [][]byte {
	recs := make([][]byte, n)
	for i := range recs {
		for {
			b := make([]byte, r.IntN(2001))
			for j := range b {
				b[j] = byte(r.UintN(256))
			}
			if !bytes.Contains(b, delim) {
				recs[i] = b
				break
			}
		}
	}
	return recs
}

// TestDelimitedRoundTrip produces a file of random bytes split by a
// delimiter (NUL with -0, a two-byte one with --delimiter) and reads it back
// with consume -o raw and the same delimiter: the bytes are the file's.
// Records hold newlines, CRs and every other byte.
func TestDelimitedRoundTrip(t *testing.T) {
	startDev(t, 1)
	r := rand.New(rand.NewPCG(1, 2))
	from := 0
	for _, tc := range []struct {
		name  string
		delim []byte
		flags []string
	}{
		{"null", []byte{0}, []string{"-0"}},
		{"two bytes", []byte{0x1e, 0x1f}, []string{"--delimiter", `\x1e\x1f`}},
		{"crlf", []byte("\r\n"), []string{"-D", `\r\n`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs := randomRecords(r, 300, tc.delim)
			var file bytes.Buffer
			for _, rec := range recs {
				file.Write(rec)
				file.Write(tc.delim)
			}
			path := filepath.Join(t.TempDir(), "records")
			if err := os.WriteFile(path, file.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"produce", "-q", "--file", path}, tc.flags...)
			if got, want := mustRun(t, "", args...), fmt.Sprintf("produced %d records at offsets %d..%d, fsynced on a majority of voters' disks before the answer\n", len(recs), from, from+len(recs)-1); got != want {
				t.Fatalf("produce printed %q, want %q", got, want)
			}
			args = append([]string{"consume", "-o", "raw", "--from", strconv.Itoa(from)}, tc.flags...)
			got := mustRun(t, "", args...)
			if got != file.String() {
				t.Fatalf("consume -o raw %v gave %d bytes that differ from the %d produced", tc.flags, len(got), file.Len())
			}
			from += len(recs)
		})
	}
}

// nextOffsetRE matches what a following read prints on stderr at its end.
var nextOffsetRE = regexp.MustCompile(`(?m)^consume: next offset (\d+) \(resume with --from (\d+)\)$`)

// TestFollowResume interrupts `consume --from N --follow` 20 times while a
// producer writes, each time resuming from the offset the run before printed
// on stderr: together the runs print every record once, in order, with no
// gap and no repeat, and match the log.
func TestFollowResume(t *testing.T) {
	startDev(t, 3)

	// The producer: a produce reading a pipe. Each run hands the feeder
	// 200 more lines to write, so records keep arriving while the run is
	// interrupted, and the log stays small.
	pr, pw := io.Pipe()
	prodCtx, stopProd := context.WithCancel(context.Background())
	prodDone := make(chan error, 1)
	prodErr := newSyncBuffer()
	go func() {
		m := &Main{Stdin: pr, Stdout: io.Discard, Stderr: prodErr}
		prodDone <- m.Run(prodCtx, []string{"proglogctl", "produce", "--progress", "never"})
	}()
	more := make(chan struct{}, 20)
	feedDone := make(chan struct{})
	var fed sync.WaitGroup
	fed.Go(func() {
		i := 0
		for {
			select {
			case <-feedDone:
				return
			case <-more:
			}
			for range 200 {
				if _, err := fmt.Fprintf(pw, "rec-%d\n", i); err != nil {
					return
				}
				i++
			}
		}
	})
	stopProducer := sync.OnceFunc(func() {
		close(feedDone)
		pw.Close()
		fed.Wait()
		select {
		case err := <-prodDone: // at the end of its input
			if err != nil {
				t.Errorf("producer: %v\n%s", err, prodErr.String())
			}
		case <-time.After(30 * time.Second):
			stopProd()
			<-prodDone
			t.Errorf("producer did not end within 30 s of the end of its input")
		}
		stopProd()
	})
	t.Cleanup(stopProducer)

	type rec struct {
		Offset uint64 `json:"offset"`
		Value  string `json:"value"`
	}
	var seen []rec
	next := uint64(0)
	for run := range 20 {
		more <- struct{}{}
		ctx, cancel := context.WithCancel(context.Background())
		out, errOut := newSyncBuffer(), newSyncBuffer()
		done := make(chan error, 1)
		go func() {
			m := &Main{Stdin: strings.NewReader(""), Stdout: out, Stderr: errOut}
			done <- m.Run(ctx, []string{"proglogctl", "consume", "--from", strconv.FormatUint(next, 10), "--follow", "-o", "json"})
		}()
		// Interrupted once it has printed some records, mid-stream.
		waitFor(t, 20*time.Second, fmt.Sprintf("run %d to print 50 records from offset %d", run, next), func() bool {
			return strings.Count(out.String(), "\n") >= 50 // of the 200 more

		})
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: %v\n%s", run, err, errOut.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("run %d did not end within 20 s of its interrupt", run)
		}
		m := nextOffsetRE.FindStringSubmatch(errOut.String())
		if m == nil {
			t.Fatalf("run %d printed no next offset on stderr: %q", run, errOut.String())
		}
		resume, _ := strconv.ParseUint(m[1], 10, 64)
		dec := json.NewDecoder(strings.NewReader(out.String()))
		count := uint64(0)
		for dec.More() {
			var r rec
			if err := dec.Decode(&r); err != nil {
				t.Fatalf("run %d: %v", run, err)
			}
			if want := next + count; r.Offset != want {
				t.Fatalf("run %d printed offset %d where %d was due (gap or repeat)", run, r.Offset, want)
			}
			seen = append(seen, r)
			count++
		}
		if resume != next+count {
			t.Fatalf("run %d printed offsets %d..%d and said resume from %d", run, next, next+count-1, resume)
		}
		t.Logf("run %d: offsets %d..%d, resume from %d", run, next, resume-1, resume)
		next = resume
	}
	stopProducer()

	// The runs together are the log's first records.
	got := mustRun(t, "", "consume", "--to", strconv.FormatUint(next, 10), "-o", "json")
	dec := json.NewDecoder(strings.NewReader(got))
	for i := 0; dec.More(); i++ {
		var r rec
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		if r != seen[i] {
			t.Fatalf("offset %d: the runs printed %+v, the log holds %+v", i, seen[i], r)
		}
		if want := fmt.Sprintf("rec-%d", i); r.Value != want {
			t.Fatalf("offset %d holds %q, want %q (the producer's order)", i, r.Value, want)
		}
	}
}
