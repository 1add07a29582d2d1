// Package raftlog is hashicorp/raft's log store and stable store in one
// directory, made for one fdatasync per append: a batch of entries is one
// write into a segment file whose blocks were all written and synced
// before it was named, so the fdatasync that follows carries no metadata.
// A new segment's file is made ahead: the file of a segment compaction
// removed (up to 16 are kept for this), or else one zero-filled.
//
// # Layout
//
// A directory holds LOCK (flock: one process at a time), stable (the stable
// store's keys, rewritten whole through a temporary file and a rename) and
// the segments, <first index, 20 digits>.seg, each of consecutive entries.
// A segment starts with a 16-byte header (the magic "plraftl1", then its
// first index) and holds frames:
//
//	length  uint32  bytes of the payload
//	crc     uint32  CRC-32C of the payload, chained: it starts from the
//	                previous frame's crc (from the header's CRC for the first)
//	payload index uint64, term uint64, type uint8, appended-at int64 (Unix
//	        nanoseconds, 0 for none), data length uint32, data, extensions
//	        length uint32, extensions
//
// all little-endian. Zeros follow the last frame to the end of the file, or
// the frames a reused file held before: their indexes are below the
// segment's first, so they never follow.
//
// # Recovery
//
// Open reads each segment up to its first frame that is incomplete, fails
// its checksum, does not carry the next index, or has a lower term than
// the entry before. In the last segment that is where a write that never
// returned begins (or where a tail was cut), and the log ends there; an earlier segment that ends
// short of the next segment's first entry is corruption, and Open refuses
// it. The chained checksum is what keeps entries a tail deletion cut off
// from coming back: new entries are written over them, and an old frame
// after them cannot match a chain it was not written in.
//
// A write or fdatasync of entries (or of a tail's cut) that fails leaves
// what reached the disk unknown (after a failed fsync the kernel may have
// dropped the pages), so the store refuses every later StoreLogs until it
// is opened again.
package raftlog
