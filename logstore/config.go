package logstore

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config tunes a Log. Start from DefaultConfig.
type Config struct {
	// MaxStoreBytes is the size at which the active segment's store file is
	// sealed and a new segment started. A segment always holds whole Appends,
	// so one may exceed it by up to one batch.
	MaxStoreBytes int64
	// MaxRecordBytes is the largest record Append accepts.
	MaxRecordBytes int
	// RetainBytes drops the oldest sealed segments while the log is larger;
	// 0 keeps everything.
	RetainBytes int64
	// RetainAge drops sealed segments whose last append is older; 0 keeps
	// everything.
	RetainAge time.Duration
	// InitialOffset is the offset of the first record of a new, empty log.
	InitialOffset uint64
	// Logger receives recovery and retention reports.
	Logger *slog.Logger
	// OnSync, when set, is called after each fsync of a segment (a Sync, a
	// segment sealed, Close) with how long it took and whether it failed. It
	// runs on the syncing goroutine and must not call the Log. Metrics hang
	// here: logstore itself knows no metrics library.
	OnSync func(d time.Duration, err error)
}

// Bounds on Config.MaxStoreBytes: a segment's positions are 32-bit, and a
// segment may hold one batch beyond MaxStoreBytes.
const (
	minStoreBytes = 4 << 10
	maxStoreBytes = 1 << 30
)

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{
		MaxStoreBytes:  64 << 20,
		MaxRecordBytes: 1 << 20,
		Logger:         slog.Default(),
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.MaxStoreBytes < minStoreBytes || c.MaxStoreBytes > maxStoreBytes:
		return fmt.Errorf("logstore: MaxStoreBytes %d is outside [%d, %d]", c.MaxStoreBytes, minStoreBytes, maxStoreBytes)
	case c.MaxRecordBytes <= 0:
		return fmt.Errorf("logstore: MaxRecordBytes %d must be positive", c.MaxRecordBytes)
	case int64(frameSize(c.MaxRecordBytes, make([]byte, MaxMetaBytes))) > c.MaxStoreBytes-headerSize:
		return fmt.Errorf("logstore: MaxRecordBytes %d does not fit in a segment of MaxStoreBytes %d", c.MaxRecordBytes, c.MaxStoreBytes)
	case c.RetainBytes < 0:
		return fmt.Errorf("logstore: RetainBytes %d is negative", c.RetainBytes)
	case c.RetainAge < 0:
		return fmt.Errorf("logstore: RetainAge %v is negative", c.RetainAge)
	case c.Logger == nil:
		return errors.New("logstore: Logger is nil")
	}
	return nil
}
