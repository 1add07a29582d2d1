package raftfsm

// Snapshot archive: the byte stream that carries a snapshot's files, a flat
// directory of regular files (log segments), through Raft's InstallSnapshot
// stream and the FSM's Restore. On disk a snapshot is the files themselves;
// the archive exists only on the wire, produced on the fly by writeArchive and
// unpacked on the fly by readArchive.
//
//	+--------+---------+------------+
//	| magic  | version | file count |   magic "PLSA", version 1
//	| [4]    | u32     | u32        |   file count <= archiveMaxFiles
//	+--------+---------+------------+
//
// then, file count times, in strictly increasing byte order of name:
//
//	+----------+-------------------+------+---------------+
//	| name len | name              | size | data          |
//	| u16      | [name len]        | u64  | [size]        |
//	+----------+-------------------+------+---------------+
//
// then the trailer, and nothing after it:
//
//	+---------+
//	| crc32c  |   Castagnoli, over every byte before the trailer
//	| u32     |
//	+---------+
//
// Integers are big-endian. A name is 1 to 255 bytes, holds no '/', '\\' or NUL
// and is not "." or "..", so it always names a file inside the target
// directory. Names are sorted and unique, so an archive is canonical: unpacking
// it and archiving the result again gives the same bytes, and archiveSize of
// the unpacked directory equals the length of the stream received.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

const (
	archiveMagic              = "PLSA"    // on-disk format; never change
	archiveVersion     uint32 = 1         // on-disk format; never change
	archiveHeaderSize         = 4 + 4 + 4 // magic, version, file count; on-disk format; never change
	archiveEntryFixed         = 2 + 8     // name len + size; on-disk format; never change
	archiveTrailerSize        = 4         // crc32c; on-disk format; never change
	archiveMaxNameLen         = 255       // on-disk format limit; never change
	// archiveMaxFiles bounds the file count, checked before anything is
	// created. Raising it later is compatible; lowering it is not.
	archiveMaxFiles = 1 << 20

	archiveBufSize = 64 << 10
)

var archiveCRCTable = crc32.MakeTable(crc32.Castagnoli)

// errArchiveCorrupt is matched (errors.Is) by every error readArchive returns
// for a stream that is not a well-formed archive: truncated, checksum
// mismatch, bad name, out-of-bounds count or size, trailing bytes.
var errArchiveCorrupt = errors.New("raftfsm: snapshot archive: corrupt")

// archiveEntry is one file of a directory to be archived.
type archiveEntry struct {
	name string
	size int64
}

// archiveCheckName reports why name may not appear in an archive, or nil.
func archiveCheckName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case len(name) > archiveMaxNameLen:
		return fmt.Errorf("name of %d bytes is longer than %d", len(name), archiveMaxNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("name %q is not a file name", name)
	case strings.ContainsAny(name, "/\\\x00"):
		return fmt.Errorf("name %q holds a path separator or NUL", name)
	}
	return nil
}

// archiveList lists dir as an archive would carry it: every entry a regular
// file with a valid name, sorted by name. Anything else is an error, so no file
// is ever left out silently. Errors carry no package prefix.
func archiveList(dir string) ([]archiveEntry, error) {
	des, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return nil, err
	}
	if len(des) > archiveMaxFiles {
		return nil, fmt.Errorf("%s holds %d files, more than %d", dir, len(des), archiveMaxFiles)
	}
	ents := make([]archiveEntry, 0, len(des))
	for _, de := range des {
		if err := archiveCheckName(de.Name()); err != nil {
			return nil, fmt.Errorf("%s: %v", dir, err)
		}
		if !de.Type().IsRegular() {
			return nil, fmt.Errorf("%s is not a regular file (%v)", filepath.Join(dir, de.Name()), de.Type())
		}
		fi, err := de.Info()
		if err != nil {
			return nil, err
		}
		ents = append(ents, archiveEntry{name: de.Name(), size: fi.Size()})
	}
	return ents, nil
}

// archiveSize returns the exact number of bytes writeArchive(w, dir) writes,
// provided the files in dir do not change in between.
func archiveSize(dir string) (int64, error) {
	ents, err := archiveList(dir)
	if err != nil {
		return 0, fmt.Errorf("raftfsm: snapshot archive: %w", err)
	}
	n := int64(archiveHeaderSize + archiveTrailerSize)
	for _, e := range ents {
		n += archiveEntryFixed + int64(len(e.name)) + e.size
	}
	return n, nil
}

// writeArchive writes the files of dir to w as an archive, in name order, and
// returns the number of bytes written to w. Every entry of dir must be a
// regular file. Files are opened one at a time; a file that shrinks while it is
// copied is an error.
func writeArchive(w io.Writer, dir string) (int64, error) {
	ents, err := archiveList(dir)
	if err != nil {
		return 0, fmt.Errorf("raftfsm: snapshot archive: %w", err)
	}
	cw := &archiveCountWriter{w: w}
	h := crc32.New(archiveCRCTable)
	bw := bufio.NewWriterSize(io.MultiWriter(cw, h), archiveBufSize)

	var hdr [archiveHeaderSize]byte
	copy(hdr[:4], archiveMagic)
	binary.BigEndian.PutUint32(hdr[4:8], archiveVersion)
	binary.BigEndian.PutUint32(hdr[8:12], uint32(len(ents)))
	if _, err := bw.Write(hdr[:]); err != nil {
		return cw.n, fmt.Errorf("raftfsm: snapshot archive: write header: %w", err)
	}
	for _, e := range ents {
		if err := archiveWriteFile(bw, dir, e.name); err != nil {
			return cw.n, err
		}
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("raftfsm: snapshot archive: write: %w", err)
	}
	var tr [archiveTrailerSize]byte
	binary.BigEndian.PutUint32(tr[:], h.Sum32())
	if _, err := cw.Write(tr[:]); err != nil {
		return cw.n, fmt.Errorf("raftfsm: snapshot archive: write trailer: %w", err)
	}
	return cw.n, nil
}

// archiveWriteFile writes one file's entry: name, size as of now, data.
func archiveWriteFile(w io.Writer, dir, name string) error {
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("raftfsm: snapshot archive: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("raftfsm: snapshot archive: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("raftfsm: snapshot archive: %s is not a regular file (%v)", path, fi.Mode().Type())
	}
	var hdr [archiveEntryFixed + archiveMaxNameLen]byte
	binary.BigEndian.PutUint16(hdr[:2], uint16(len(name)))
	n := 2 + copy(hdr[2:], name)
	binary.BigEndian.PutUint64(hdr[n:], uint64(fi.Size()))
	if _, err := w.Write(hdr[:n+8]); err != nil {
		return fmt.Errorf("raftfsm: snapshot archive: write %s: %w", name, err)
	}
	copied, err := io.CopyN(w, f, fi.Size())
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("raftfsm: snapshot archive: %s shrank to %d bytes while archived (was %d)", path, copied, fi.Size())
	}
	if err != nil {
		return fmt.Errorf("raftfsm: snapshot archive: write %s: %w", name, err)
	}
	return nil
}

type archiveCountWriter struct {
	w io.Writer
	n int64
}

func (c *archiveCountWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// readArchive unpacks the archive read from r into dir, which must exist and be
// empty. It succeeds only if r holds exactly one well-formed archive: it reads
// r to its end, verifies the trailer and that nothing follows it, and only
// then fsyncs every file and dir. Names and counts are checked before anything
// is created or allocated, and data is streamed, never buffered whole. On any
// error the files it created are removed, so dir is empty again, and the error
// starts with "raftfsm: snapshot archive: "; malformed input matches
// errArchiveCorrupt.
func readArchive(r io.Reader, dir string) error {
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("raftfsm: snapshot archive: %w", err)
	}
	if len(des) > 0 {
		return fmt.Errorf("raftfsm: snapshot archive: target directory %s is not empty", dir)
	}
	u := &archiveUnpacker{
		dir: dir,
		br:  bufio.NewReaderSize(r, archiveBufSize),
		h:   crc32.New(archiveCRCTable),
	}
	if err := u.unpack(); err != nil {
		if rmErr := u.removeCreated(); rmErr != nil {
			return errors.Join(err, rmErr)
		}
		return err
	}
	return nil
}

// archiveUnpacker is the state of one readArchive call; one goroutine owns it.
type archiveUnpacker struct {
	dir     string
	br      *bufio.Reader
	h       hash.Hash32
	off     int64    // bytes consumed from br
	created []string // paths of the files created so far
}

// Read reads from the stream, adding what it reads to the checksum.
func (u *archiveUnpacker) Read(p []byte) (int, error) {
	n, err := u.br.Read(p)
	u.h.Write(p[:n])
	u.off += int64(n)
	return n, err
}

// readFull fills p from the checksummed stream; what names the field read.
func (u *archiveUnpacker) readFull(p []byte, what string) error {
	at := u.off
	if _, err := io.ReadFull(u, p); err != nil {
		return u.readErr(err, what, at)
	}
	return nil
}

func (u *archiveUnpacker) readErr(err error, what string, at int64) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated in %s at byte %d (stream ends at byte %d)", errArchiveCorrupt, what, at, u.off)
	}
	return fmt.Errorf("raftfsm: snapshot archive: read %s at byte %d: %w", what, at, err)
}

func (u *archiveUnpacker) unpack() error {
	var hdr [archiveHeaderSize]byte
	if err := u.readFull(hdr[:], "header"); err != nil {
		return err
	}
	if string(hdr[:4]) != archiveMagic {
		return fmt.Errorf("%w: bad magic %q", errArchiveCorrupt, hdr[:4])
	}
	if v := binary.BigEndian.Uint32(hdr[4:8]); v != archiveVersion {
		return fmt.Errorf("%w: unsupported version %d (want %d)", errArchiveCorrupt, v, archiveVersion)
	}
	count := binary.BigEndian.Uint32(hdr[8:12])
	if count > archiveMaxFiles {
		return fmt.Errorf("%w: file count %d exceeds %d", errArchiveCorrupt, count, archiveMaxFiles)
	}

	var buf [archiveMaxNameLen + 8]byte
	prev := ""
	for i := range count {
		at := u.off
		if err := u.readFull(buf[:2], fmt.Sprintf("name length of file %d", i)); err != nil {
			return err
		}
		nameLen := int(binary.BigEndian.Uint16(buf[:2]))
		if nameLen == 0 || nameLen > archiveMaxNameLen {
			return fmt.Errorf("%w: file %d at byte %d: name length %d out of range [1, %d]",
				errArchiveCorrupt, i, at, nameLen, archiveMaxNameLen)
		}
		if err := u.readFull(buf[:nameLen], fmt.Sprintf("name of file %d", i)); err != nil {
			return err
		}
		name := string(buf[:nameLen])
		if err := archiveCheckName(name); err != nil {
			return fmt.Errorf("%w: file %d at byte %d: %v", errArchiveCorrupt, i, at, err)
		}
		if i > 0 && name <= prev {
			if name == prev {
				return fmt.Errorf("%w: file %d at byte %d: duplicate name %q", errArchiveCorrupt, i, at, name)
			}
			return fmt.Errorf("%w: file %d at byte %d: name %q not after %q", errArchiveCorrupt, i, at, name, prev)
		}
		prev = name
		if err := u.readFull(buf[:8], fmt.Sprintf("size of %q", name)); err != nil {
			return err
		}
		size := binary.BigEndian.Uint64(buf[:8])
		if size > math.MaxInt64 {
			return fmt.Errorf("%w: %q at byte %d: size %d out of range", errArchiveCorrupt, name, at, size)
		}
		if err := u.unpackFile(name, int64(size)); err != nil {
			return err
		}
	}

	// The trailer is not part of what it checksums: read it around u.
	sum := u.h.Sum32()
	var tr [archiveTrailerSize]byte
	at := u.off
	n, err := io.ReadFull(u.br, tr[:])
	u.off += int64(n)
	if err != nil {
		return u.readErr(err, "trailer", at)
	}
	if got := binary.BigEndian.Uint32(tr[:]); got != sum {
		return fmt.Errorf("%w: crc mismatch at byte %d: trailer %08x, computed %08x", errArchiveCorrupt, at, got, sum)
	}
	if _, err := u.br.ReadByte(); err == nil {
		return fmt.Errorf("%w: data after the trailer at byte %d", errArchiveCorrupt, u.off)
	} else if !errors.Is(err, io.EOF) {
		return fmt.Errorf("raftfsm: snapshot archive: read after trailer at byte %d: %w", u.off, err)
	}
	// Only a verified archive is worth making durable.
	for _, p := range u.created {
		if err := snapshotFsyncFile(p); err != nil {
			return fmt.Errorf("raftfsm: snapshot archive: %w", err)
		}
	}
	if err := snapshotFsyncDir(u.dir); err != nil {
		return fmt.Errorf("raftfsm: snapshot archive: %w", err)
	}
	return nil
}

// unpackFile creates name in u.dir and copies size bytes of the stream into it.
func (u *archiveUnpacker) unpackFile(name string, size int64) error {
	path := filepath.Join(u.dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("raftfsm: snapshot archive: %w", err)
	}
	u.created = append(u.created, path)
	at := u.off
	if _, err := io.CopyN(f, u, size); err != nil {
		f.Close()
		if errors.Is(err, io.EOF) {
			return u.readErr(err, fmt.Sprintf("data of %q (%d bytes)", name, size), at)
		}
		// A read error of the stream or a write error of the file.
		return fmt.Errorf("raftfsm: snapshot archive: unpack %s (%d bytes from byte %d): %w", path, size, at, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("raftfsm: snapshot archive: %w", err)
	}
	return nil
}

// removeCreated removes every file this unpacker created.
func (u *archiveUnpacker) removeCreated() error {
	var errs []error
	for _, p := range u.created {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("raftfsm: snapshot archive: clean up: %w", err))
		}
	}
	u.created = nil
	return errors.Join(errs...)
}
