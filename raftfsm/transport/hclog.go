package transport

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// NewHCLogger returns an hclog.Logger, the logger hashicorp/raft takes, that
// sends every line to l, with hclog.Fmt values expanded.
func NewHCLogger(l *slog.Logger, name string) hclog.Logger {
	il := hclog.NewInterceptLogger(&hclog.LoggerOptions{
		Name:   name,
		Level:  hclog.Debug,
		Output: io.Discard,
	})
	il.RegisterSink(slogSink{l})
	return il
}

type slogSink struct{ l *slog.Logger }

var hclogLevels = map[hclog.Level]slog.Level{
	hclog.Trace: slog.LevelDebug - 4,
	hclog.Debug: slog.LevelDebug,
	hclog.Info:  slog.LevelInfo,
	hclog.Warn:  slog.LevelWarn,
	hclog.Error: slog.LevelError,
}

// peerFailureLines are Raft's errors for a failed RPC to a follower, which
// it logs again at every retry (a heartbeat every few hundred milliseconds
// while a peer is down). They go to debug: Transport logs a peer going down
// and coming back once each instead.
var peerFailureLines = map[string]bool{
	"failed to heartbeat to":           true,
	"failed to appendEntries to":       true,
	"failed to pipeline appendEntries": true,
}

// Accept implements hclog.SinkAdapter.
func (s slogSink) Accept(name string, level hclog.Level, msg string, args ...interface{}) {
	lvl, ok := hclogLevels[level]
	if !ok {
		lvl = slog.LevelInfo
	}
	if peerFailureLines[msg] {
		lvl = min(lvl, slog.LevelDebug)
	}
	if !s.l.Enabled(context.Background(), lvl) {
		return
	}
	attrs := make([]any, 0, len(args)+2)
	attrs = append(attrs, "component", name)
	for i, a := range args {
		if f, ok := a.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				a = fmt.Sprintf(format, f[1:]...)
			}
		}
		if i%2 == 0 {
			a = fmt.Sprint(a) // keys are strings for slog
		}
		attrs = append(attrs, a)
	}
	s.l.Log(context.Background(), lvl, msg, attrs...)
}
