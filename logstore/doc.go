// Package logstore is the segmented on-disk commit log: opaque byte records at
// dense uint64 offsets, appended in batches and read by offset. It knows
// nothing of protobuf, gRPC or Raft.
//
// # Files
//
// A log is a directory holding a LOCK file (flock: one process at a time) and
// segments. A segment is a store file and an index file named by the offset of
// its first record, 20 digits wide:
//
//	00000000000000000000.store  00000000000000000000.index
//	00000000000000041573.store  00000000000000041573.index  ← active segment
//
// Every file starts with a 16-byte header:
//
//	+--------+-----------+-------------+
//	| magic  | version   | base offset |   magic "PLGS" (store) or "PLGI" (index)
//	| [4]    | u32       | u64         |   version 1; integers big-endian
//	+--------+-----------+-------------+
//
// The store is a sequence of frames, one per record:
//
//	+-----------+-----------+---------------------------------------------------+
//	| length    | crc32c    | body (length bytes, checksummed)                   |
//	| u32       | u32       | offset u64 | flags u8 | [metaLen u16 | meta] | payload |
//	+-----------+-----------+---------------------------------------------------+
//
// flags: 1 = last frame of its batch, 2 = carries metadata, 4 = metadata only (takes
// no offset, has no payload). The offset in every frame lets a read detect an
// index that points at the wrong frame.
//
// The index holds one 8-byte entry per record, relative offset u32 | store
// position u32; the relative offset must equal the entry's ordinal. Its size is
// always exactly what was written: it is never preallocated, so a crash cannot
// leave zeroed entries that look real.
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
// logs how many bytes it dropped. Sealed segments get the same tail check, and
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
// LOCK held it verifies every frame and index entry of every segment, not only
// the tails Open looks at, and reports per segment. Its repairs are Open's
// (a torn tail of the active segment, index files), written as new files
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
