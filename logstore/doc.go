// Package logstore is the segmented on-disk commit log: opaque byte records at
// dense uint64 offsets, appended in batches and read by offset. It knows
// nothing of protobuf, gRPC or Raft.
//
// # Files
//
// A log is a directory holding a LOCK file (flock: one process at a time) and
// segments. A segment is a store file, an index file and a time index file
// named by the offset of its first record, 20 digits wide:
//
//	00000000000000000000.store  00000000000000000000.index  00000000000000000000.timeindex
//	00000000000000041573.store  00000000000000041573.index  00000000000000041573.timeindex  ← active
//
// Every file starts with a 16-byte header:
//
//	+--------+-----------+-------------+
//	| magic  | version   | base offset |   magic "PLGS" (store), "PLGI" (index) or "PLGT" (time index)
//	| [4]    | u32       | u64         |   version 1; integers big-endian
//	+--------+-----------+-------------+
//
// The store is a sequence of frames, one per record:
//
//	+-----------+-----------+------------------------------------------------------------------+
//	| length    | crc32c    | body (length bytes, checksummed)                                  |
//	| u32       | u32       | offset u64 | flags u8 | [time i64] | [metaLen u16 | meta] | payload |
//	+-----------+-----------+------------------------------------------------------------------+
//
// flags: 1 = last frame of its batch, 2 = carries metadata, 4 = metadata only (takes
// no offset, has no payload), 8 = carries a time (unix nanoseconds, > 0). The
// offset in every frame lets a read detect an index that points at the wrong
// frame. Flag 8 came after the first files were written: a frame without it is
// read exactly as before, and a log appended without times is written byte for
// byte as before.
//
// The index holds one 8-byte entry per record, relative offset u32 | store
// position u32; the relative offset must equal the entry's ordinal. Its size is
// always exactly what was written: it is never preallocated, so a crash cannot
// leave zeroed entries that look real.
//
// The time index is sparse, 12-byte entries:
//
//	+-----------+----------------------------------+
//	| time i64  | m (1 bit) | relative offset u31  |
//	+-----------+----------------------------------+
//
// A batch appended with a time gets one entry: its time and its first record.
// A batch without time gets a marker entry (m = 1, time = the latest time
// stamped before it) when it starts 64 KiB or more of store after the batch of
// the last entry, which bounds how much store recovery scans to rebuild the
// time index's tail; a sealed segment's time index ends with a marker at
// relative offset = its record count (the seal entry). Entries' times never
// decrease, so OffsetForTime binary searches them, and a segment whose store
// has a time to carry (the log's latest time when it was created) starts with
// a metadata-only frame holding it, so the latest time survives retention.
//
// # Times
//
// AppendTimed stamps every record of a batch with one time; a time below the
// latest stamped on the log is raised to it, so times never go back in offset
// order. ReadRecords returns each record's time (0 for one without), and
// OffsetForTime finds the first record at or after a time by binary search,
// first over segments (by the latest time of each) and then over one
// segment's time index, checking the entries it lands on against the store.
// Records without time count as older than any time.
//
// # Batches and metadata
//
// One Append is one batch, and only the last frame of a batch is marked as its
// end: recovery keeps whole batches and drops a partial one. A batch never spans
// two segments. AppendWithMeta stores an opaque metadata value (such as the Raft
// index the batch came from) atomically with the records; every batch end
// carries the value in force, and a new segment starts with a metadata-only frame
// when there is one, so Meta after a crash is the value of the last surviving
// batch.
//
// # Durability and recovery
//
// Append writes to the operating system: the records survive a crash of the
// process as soon as Append returns. Sync fsyncs the active segment; a segment is
// fsynced when it is sealed, so sealed segments are always durable.
//
// Open recovers the active segment: it walks back from the last index entry to
// one that points at a valid frame ending a batch, scans the store from there
// verifying checksums, rebuilds missing index entries, truncates a torn tail and
// logs how many bytes it dropped. The time index is recovered the same way:
// from its last entry that names the first record of a batch with the entry's
// time (a sealed segment's: its seal entry), the store is scanned and the
// missing entries written; a missing time index (a log written before times
// existed) is rebuilt from the whole store. The time index is fsynced with
// its segment (on Sync and when sealed), never on its own. Sealed segments get the same tail check, and
// one that would lose data is an error naming the file. Checksums of the rest are
// verified on every read: a corrupt record is an error naming the file and
// position (and the index file, when the frame's bounds came from it), never
// wrong data.
//
// A failed write or sync is sticky: the log refuses appends with that error
// (Err) until Recover, which its owner calls after a backoff, opens the
// segments again exactly as Open does, so a disk that was full, or a
// transient I/O error, never needs a restart of the process.
//
// Check (check.go) is the offline verifier behind `proglogctl fsck`: with the
// LOCK held it verifies every frame, index entry and time index entry of every
// segment, not only the tails Open looks at, and reports per segment. Its
// repairs are Open's (a torn tail of the active segment, index and time index
// files), written as new files
// renamed into place so a file hard-linked into a snapshot is never changed;
// cutting a corrupt segment to its good prefix needs an explicit option and
// moves the segments after it aside rather than deleting them.
//
// # Concurrency
//
// One writer at a time (Append, Sync, Retain, Checkpoint, Replace, Recover and Close
// serialize on a mutex) and any number of readers, which take no lock: they load
// an immutable state (segment list, next offset, readable bytes of the active
// segment) that the writer swaps atomically after each append, and they hold a
// reference on the segment they read so retention never closes a file under
// them. Wait blocks on a channel the writer closes when it publishes, never
// polling.
package logstore
