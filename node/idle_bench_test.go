package node_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

// BenchmarkIdleConsumeStreams measures the CPU the whole process (a 3-node
// cluster and its clients) spends while N ConsumeStreams wait at the end of
// the log, over a 3 s window per op, against the same cluster with none. Run
// with -benchtime 1x.
func BenchmarkIdleConsumeStreams(b *testing.B) {
	c, _, _ := startWithClient(b, leader)
	if _, err := c.Produce(testCtx(b), &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}}); err != nil {
		b.Fatal(err)
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	const window = 3 * time.Second
	for _, streams := range []int{0, 1000} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for range streams {
				s, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 1})
				if err != nil {
					b.Fatal(err)
				}
				_ = s // waits at the end of the log until cancelled
			}
			for range b.N {
				start, wall := cpu(), time.Now()
				<-time.After(window)
				used := cpu() - start
				b.ReportMetric(100*used.Seconds()/time.Since(wall).Seconds(), "%cpu-of-one-core")
			}
		})
	}
}
