package node

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/raftfsm/replica"
)

// TestServerCodecRecordBatch checks that a recordBatch encodes to the
// ConsumeBatchResponse of its records, also in a buffer reused from a larger
// batch, and that every other message is the proto codec's.
func TestServerCodecRecordBatch(t *testing.T) {
	c := newServerCodec()
	batch := func(n, size int) []replica.Record {
		recs := make([]replica.Record, n)
		for i := range recs {
			recs[i] = replica.Record{Offset: uint64(i), Time: int64(i) * 1e9, Value: bytes.Repeat([]byte{byte('a' + i%26)}, size)}
		}
		return recs
	}
	check := func(recs []replica.Record) {
		t.Helper()
		data, err := c.Marshal(&recordBatch{recs: recs})
		if err != nil {
			t.Fatal(err)
		}
		defer data.Free()
		var got logv1.ConsumeBatchResponse
		if err := proto.Unmarshal(data.Materialize(), &got); err != nil {
			t.Fatalf("decoding %d records: %v", len(recs), err)
		}
		if len(got.Records) != len(recs) {
			t.Fatalf("decoded %d records, want %d", len(got.Records), len(recs))
		}
		for i, r := range got.Records {
			w := recs[i]
			if r.Offset != w.Offset || r.Timestamp != w.Time || !bytes.Equal(r.Value, w.Value) || r.Term != 0 || r.Type != 0 {
				t.Fatalf("record %d = {%d %d %q}, want {%d %d %q}", i, r.Offset, r.Timestamp, r.Value, w.Offset, w.Time, w.Value)
			}
		}
	}
	check(batch(4000, 256)) // about 1 MiB, returned to the pool
	check(batch(3, 10))     // likely in that buffer again: no bytes of the first may show
	check(batch(1, 2<<20))  // larger than any pooled buffer

	want := &logv1.ProduceResponse{Offset: 42}
	data, err := c.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var got logv1.ProduceResponse
	if err := c.Unmarshal(data, &got); err != nil || !proto.Equal(&got, want) {
		t.Fatalf("ProduceResponse round trip: %v, %v", &got, err)
	}
}
