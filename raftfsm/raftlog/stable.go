package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// StableFile holds the stable store: every key and value, rewritten whole
// (to a temporary file, synced, renamed over it) on each Set. Raft sets
// its few keys (term, vote) only on elections. Open writes it at once, so
// it marks a directory that holds a store.
const StableFile = "stable"

// errKeyNotFound is what Raft expects from a stable store for a key never
// set: it compares the text.
var errKeyNotFound = errors.New("not found")

// Set implements raft.StableStore: durable when it returns.
func (s *Store) Set(key, val []byte) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.RLock()
	next, closed := maps.Clone(s.stable), s.closed
	s.mu.RUnlock()
	if closed {
		return errClosed
	}
	next[string(key)] = slices.Clone(val)
	if err := writeStable(s.dir, next); err != nil {
		return err
	}
	s.mu.Lock()
	s.stable = next
	s.mu.Unlock()
	return nil
}

// Get implements raft.StableStore.
func (s *Store) Get(key []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.stable[string(key)]
	if !ok {
		return nil, errKeyNotFound
	}
	return slices.Clone(v), nil
}

// SetUint64 implements raft.StableStore.
func (s *Store) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 implements raft.StableStore.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raftlog: stable key %q holds %d bytes, not a uint64", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// writeStable writes kv as the stable file: for each key in order, its
// length, the key, the value's length and the value (uint32 lengths), then
// a CRC-32C of all that.
func writeStable(dir string, kv map[string][]byte) error {
	var b []byte
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(k)))
		b = append(b, k...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(kv[k])))
		b = append(b, kv[k]...)
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	path := filepath.Join(dir, StableFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("raftlog: write the stable store: %w", err)
	}
	return nil
}

// readStable reads the stable file; a missing one is empty.
func readStable(dir string) (map[string][]byte, error) {
	path := filepath.Join(dir, StableFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string][]byte{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("raftlog: %w", err)
	}
	bad := fmt.Errorf("raftlog: %s is corrupt (checksum or lengths do not match)", path)
	if len(b) < 4 || crc32.Checksum(b[:len(b)-4], castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, bad
	}
	kv := map[string][]byte{}
	for b = b[:len(b)-4]; len(b) > 0; {
		var k, v []byte
		if k, b, err = cutField(b); err == nil {
			v, b, err = cutField(b)
		}
		if err != nil {
			return nil, bad
		}
		kv[string(k)] = v
	}
	return kv, nil
}

// cutField cuts a uint32-length-prefixed field off b.
func cutField(b []byte) (field, rest []byte, err error) {
	if len(b) < 4 || uint64(len(b)-4) < uint64(binary.LittleEndian.Uint32(b)) {
		return nil, nil, errors.New("short")
	}
	n := binary.LittleEndian.Uint32(b)
	return b[4 : 4+n], b[4+n:], nil
}
