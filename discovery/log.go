package discovery

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// newLogLogger returns the *log.Logger Serf and memberlist take. Their lines
// look like "[WARN] memberlist: message"; each becomes one record in l at the
// level named in brackets, with the subsystem as the component attribute.
// Serf's warning that it was shut down without leaving is logged at Info.
func newLogLogger(l *slog.Logger) *log.Logger {
	return log.New(logWriter{l}, "", 0)
}

type logWriter struct{ l *slog.Logger }

var logLevels = map[string]slog.Level{
	"TRACE": slog.LevelDebug - 4,
	"DEBUG": slog.LevelDebug,
	"INFO":  slog.LevelInfo,
	"WARN":  slog.LevelWarn,
	"ERR":   slog.LevelError,
	"ERROR": slog.LevelError,
}

// Write takes one line from the log.Logger.
func (w logWriter) Write(p []byte) (int, error) {
	n := len(p)
	line := bytes.TrimSpace(p)
	lvl := slog.LevelInfo
	if rest, ok := bytes.CutPrefix(line, []byte("[")); ok {
		if name, msg, ok := bytes.Cut(rest, []byte("]")); ok {
			if l, ok := logLevels[string(name)]; ok {
				lvl, line = l, bytes.TrimSpace(msg)
			}
		}
	}
	ctx := context.Background()
	if !w.l.Enabled(ctx, lvl) {
		return n, nil
	}
	component := "serf"
	if c, msg, ok := bytes.Cut(line, []byte(": ")); ok && (string(c) == "serf" || string(c) == "memberlist") {
		component, line = string(c), msg
	}
	switch {
	case lvl == slog.LevelWarn && string(line) == "Shutdown without a Leave":
		// Close stops without leaving on purpose: that is how a node stops
		// when it means to come back, and no cause for a warning.
		lvl = slog.LevelInfo
	case lvl == slog.LevelWarn && component == "memberlist" && bytes.HasPrefix(line, []byte("failed to resolve ")):
		// A join address that does not resolve (yet): the join goroutine
		// warns once per attempt with this error in its own message.
		lvl = slog.LevelDebug
	}
	w.l.Log(ctx, lvl, string(line), "component", component)
	return n, nil
}
