package logstore

// ActiveBytes returns the bytes of the active segment's store file that hold
// published records (its header included). A checkpoint copies that much;
// the sealed segments it only links.
func (l *Log) ActiveBytes() int64 { return l.cur.Load().active }
