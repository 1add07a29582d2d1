package raftfsm

import "time"

// retentionTick is how often an age limit on retention is applied to a log
// that is not being written (sealing a segment applies both limits): a
// quarter of the limit, between a second and a minute.
func retentionTick(age time.Duration) time.Duration {
	return min(max(age/4, time.Second), time.Minute)
}

// retainLoop applies Store.RetainAge on a ticker until Close. Each server
// drops segments by its own clock, so with an age limit the servers' lowest
// offsets may differ for a moment; the size limit is applied as each segment
// is sealed, at the same entry on every server.
func (l *Log) retainLoop() {
	defer l.wg.Done()
	t := time.NewTicker(retentionTick(l.conf.Store.RetainAge))
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			if err := l.Retain(); err != nil {
				l.logger.Warn("applying retention failed", "err", err)
			}
		}
	}
}

// Retain applies the local log's retention limits now (logstore.Log.Retain):
// the age limit needs it called from time to time on a log that is not being
// written, as sealing a segment is what applies them otherwise.
func (l *Log) Retain() error { return storeErr(l.store.Retain()) }
