package node

import "time"

// retentionTick is how often an age limit on retention is applied to a log
// that is not being written (sealing a segment applies both limits): a
// quarter of the limit, between a second and a minute.
func retentionTick(age time.Duration) time.Duration {
	return min(max(age/4, time.Second), time.Minute)
}

// startRetention applies Replica.Store.RetainAge on a ticker, when set, on a
// goroutine Close joins. Each server drops segments by its own clock, so
// with an age limit the servers' lowest offsets may differ for a moment; the
// size limit is applied as each segment is sealed, at the same entry on
// every server.
func (n *Node) startRetention() {
	age := n.conf.Replica.Store.RetainAge
	if age <= 0 {
		return
	}
	n.goTracked(func() {
		t := time.NewTicker(retentionTick(age))
		defer t.Stop()
		for {
			select {
			case <-n.stopping:
				return
			case <-t.C:
				err := n.log.Retain()
				select {
				case <-n.stopping: // the replica may be closing under it
					return
				default:
				}
				if err != nil {
					n.logger.Warn("applying retention failed", "err", err)
				}
			}
		}
	})
}
