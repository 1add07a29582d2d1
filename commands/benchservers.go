package commands

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/proglogctl/proglogctl/discovery"
)

// BenchServer is what one server reported of itself while a bench ran:
// GetServers asked once a second (discovery.Client.Servers), and once more
// at the end.
type BenchServer struct {
	ID          string `json:"id"`
	Samples     int    `json:"samples"`
	MaxRSSBytes uint64 `json:"max_rss_bytes"`
	RSSBytes    uint64 `json:"rss_bytes"`  // at the last sample
	DiskBytes   uint64 `json:"disk_bytes"` // at the last sample
	// FirstDiskBytes is the disk use at the first sample, so that a run
	// against a cluster that already held a log reports what it added.
	FirstDiskBytes uint64 `json:"first_disk_bytes"`
}

// sampleServers samples the servers of cl every interval until the
// returned function is called, which samples once more and returns what
// each server reported, in id order. A sample that fails is skipped: the
// load is what is measured, the samples are beside it.
func sampleServers(ctx context.Context, cl *discovery.Client, interval time.Duration) (stop func() []BenchServer) {
	var (
		mu   sync.Mutex
		byID = map[string]*BenchServer{}
	)
	sample := func() {
		ctx, cancel := context.WithTimeout(ctx, interval)
		defer cancel()
		servers, err := cl.Servers(ctx)
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, s := range servers {
			if s.RssBytes == 0 {
				continue // unreachable, or a server that does not report it
			}
			b := byID[s.Id]
			if b == nil {
				b = &BenchServer{ID: s.Id, FirstDiskBytes: s.DiskBytes}
				byID[s.Id] = b
			}
			b.Samples++
			b.MaxRSSBytes = max(b.MaxRSSBytes, s.RssBytes)
			b.RSSBytes, b.DiskBytes = s.RssBytes, s.DiskBytes
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			sample()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() []BenchServer {
		close(done)
		wg.Wait()
		sample()
		mu.Lock()
		defer mu.Unlock()
		out := make([]BenchServer, 0, len(byID))
		for _, b := range byID {
			out = append(out, *b)
		}
		slices.SortFunc(out, func(a, b BenchServer) int { return strings.Compare(a.ID, b.ID) })
		return out
	}
}

// printServers prints what the servers reported, and what each one's disk
// use grew by over the run against the bytes of record values produced in
// it: what the log costs on disk per byte of payload, also when the
// cluster held a log before the run.
func printServers(w io.Writer, servers []BenchServer, produced int64) {
	for _, s := range servers {
		fmt.Fprintf(w, "server %s: rss %.1f MB (max %.1f MB over %d samples), disk %.1f MB", s.ID,
			float64(s.RSSBytes)/1e6, float64(s.MaxRSSBytes)/1e6, s.Samples, float64(s.DiskBytes)/1e6)
		if grew := int64(s.DiskBytes) - int64(s.FirstDiskBytes); produced > 0 {
			fmt.Fprintf(w, " (%+.1f MB in the run, %.2f× the %.1f MB produced)", float64(grew)/1e6, float64(grew)/float64(produced), float64(produced)/1e6)
		}
		fmt.Fprintln(w)
	}
}
