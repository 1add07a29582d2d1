package node

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// resources measures what the node takes of the machine for GetServers:
// its RSS, and its data directory's bytes on disk, walked at most once a
// second however often it is asked.
type resources struct {
	dir string

	mu       sync.Mutex
	walked   time.Time
	dirBytes uint64
}

// rss is this process's resident memory in bytes (/proc/self/statm), 0
// when unknown.
func (r *resources) rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

// disk is the bytes allocated under the data directory, each inode counted
// once (a snapshot hard-links the log's segments).
func (r *resources) disk() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.walked) < time.Second {
		return r.dirBytes
	}
	seen := map[uint64]bool{}
	var total uint64
	filepath.WalkDir(r.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file removed while walking
		}
		var st syscall.Stat_t
		if syscall.Lstat(path, &st) != nil || seen[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		total += uint64(st.Blocks) * 512
		return nil
	})
	r.walked, r.dirBytes = time.Now(), total
	return total
}
