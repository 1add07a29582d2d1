package raftfsm

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchCluster starts 3 replicas on loopback TCP with real bolt stores (fsync
// on) and returns the leader.
func benchCluster(b *testing.B) *Log {
	b.Helper()
	nodes := startTCPCluster(b, 3, slog.New(slog.DiscardHandler), func(int) Config {
		c := DefaultConfig()
		c.HeartbeatTimeout = 500 * time.Millisecond
		c.ElectionTimeout = 500 * time.Millisecond
		c.LeaderLeaseTimeout = 500 * time.Millisecond
		return c
	}, nil)
	for _, n := range nodes {
		if n.log.IsLeader() {
			return n.log
		}
	}
	b.Fatal("no leader")
	return nil
}

func benchBatch(n int) [][]byte {
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = make([]byte, 256)
	}
	return recs
}

// BenchmarkAppend3Nodes appends 256-byte records to a 3-node cluster from
// concurrent callers; one op is one Append call.
func BenchmarkAppend3Nodes(b *testing.B) {
	for _, bc := range []struct{ callers, batch int }{
		{1, 1}, {16, 1}, {64, 1}, {64, 100},
	} {
		b.Run(fmt.Sprintf("callers=%d/batch=%d", bc.callers, bc.batch), func(b *testing.B) {
			leader := benchCluster(b)
			recs := benchBatch(bc.batch)
			lat := make([]time.Duration, b.N)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.SetBytes(int64(256 * bc.batch))
			b.ResetTimer()
			for range bc.callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						start := time.Now()
						if _, err := leader.Append(context.Background(), recs...); err != nil {
							b.Error(err)
							return
						}
						lat[i] = time.Since(start)
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N*bc.batch)/b.Elapsed().Seconds(), "records/s")
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
