package nodetest

import (
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// Writer returns a writer that sends each write to t.Log, a line at a time,
// until the test's cleanups run: goroutines that finish after the test (a
// server's last log line) must not call t.Log then. Call it before starting
// what writes to it, so its cleanup runs after that thing's.
func Writer(t testing.TB) io.Writer {
	w := &logWriter{t: t}
	t.Cleanup(w.stop)
	return w
}

type logWriter struct {
	t    testing.TB
	mu   sync.Mutex // guards done
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *logWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// Logger returns a logger of warnings and errors to t.Log (see Writer).
func Logger(t testing.TB) *slog.Logger {
	return LoggerAt(t, slog.LevelWarn)
}

// LoggerAt returns a logger of records at level and above to t.Log (see
// Writer).
func LoggerAt(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(Writer(t), &slog.HandlerOptions{Level: level}))
}
