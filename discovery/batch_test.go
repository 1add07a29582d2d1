package discovery

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

// marshalBatch is the wire form of a ConsumeBatchResponse of recs.
func marshalBatch(t testing.TB, recs ...*logv1.Record) []byte {
	t.Helper()
	b, err := proto.Marshal(&logv1.ConsumeBatchResponse{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeInto decodes wire into b as batchCodec does, wire copied into b's
// buffer first.
func decodeInto(b *batch, wire []byte) error {
	b.buf = append(b.buf[:0], wire...)
	return b.decode()
}

// sameBatch reports how got differs from want ("" when it does not), by
// the fields a reader uses; an empty value and a nil one are the same.
func sameBatch(got *batch, want *logv1.ConsumeBatchResponse) string {
	if len(got.recs) != len(want.Records) {
		return fmt.Sprintf("%d records, want %d", len(got.recs), len(want.Records))
	}
	for i, g := range got.recs {
		w := want.Records[i]
		if !bytes.Equal(g.Value, w.Value) || g.Offset != w.Offset || g.Term != w.Term || g.Type != w.Type || g.Timestamp != w.Timestamp {
			return fmt.Sprintf("record %d = {%q %d %d %d %d}, want {%q %d %d %d %d}", i,
				g.Value, g.Offset, g.Term, g.Type, g.Timestamp, w.Value, w.Offset, w.Term, w.Type, w.Timestamp)
		}
	}
	return ""
}

func TestDecodeBatch(t *testing.T) {
	big := bytes.Repeat([]byte{0xff, '\n', 0}, 100_000)
	withUnknown := protowire.AppendTag(nil, 9, protowire.BytesType)
	withUnknown = protowire.AppendBytes(withUnknown, []byte("a field of a later version"))
	withUnknown = append(withUnknown, marshalBatch(t, &logv1.Record{Value: []byte("v"), Offset: 3})...)
	withUnknown = protowire.AppendTag(withUnknown, 7, protowire.VarintType)
	withUnknown = protowire.AppendVarint(withUnknown, 42)
	// A record whose value and offset appear twice: the last ones count.
	rec := protowire.AppendTag(nil, logv1.RecordValueField, protowire.BytesType)
	rec = protowire.AppendBytes(rec, []byte("first"))
	rec = protowire.AppendTag(rec, logv1.RecordOffsetField, protowire.VarintType)
	rec = protowire.AppendVarint(rec, 1)
	rec = protowire.AppendTag(rec, logv1.RecordValueField, protowire.BytesType)
	rec = protowire.AppendBytes(rec, []byte("last"))
	rec = protowire.AppendTag(rec, logv1.RecordOffsetField, protowire.VarintType)
	rec = protowire.AppendVarint(rec, 2)
	rec = protowire.AppendTag(rec, 12, protowire.Fixed32Type)
	rec = protowire.AppendFixed32(rec, 5)
	repeated := protowire.AppendTag(nil, logv1.ConsumeBatchResponseRecordsField, protowire.BytesType)
	repeated = protowire.AppendBytes(repeated, rec)
	truncated := marshalBatch(t, &logv1.Record{Value: []byte("cut short"), Offset: 1})

	tests := []struct {
		name    string
		wire    []byte
		wantErr bool
	}{
		{"empty message", nil, false},
		{"one record", marshalBatch(t, &logv1.Record{Value: []byte("hello"), Offset: 7, Timestamp: 1_796_216_400_000_000_123}), false},
		{"every field", marshalBatch(t, &logv1.Record{Value: []byte("x"), Offset: 1 << 60, Term: 9, Type: 3, Timestamp: -1}), false},
		{"empty value", marshalBatch(t, &logv1.Record{Offset: 1}, &logv1.Record{Value: []byte{}, Offset: 2}), false},
		{"delimiters and every byte", marshalBatch(t, &logv1.Record{Value: []byte("a\nb\x00c\r\n\xff"), Offset: 1}, &logv1.Record{Value: []byte("\n"), Offset: 2}), false},
		{"a large value", marshalBatch(t, &logv1.Record{Value: big, Offset: 5}, &logv1.Record{Value: []byte("after"), Offset: 6}), false},
		{"unknown fields", withUnknown, false},
		{"fields repeated", repeated, false},
		{"truncated", truncated[:len(truncated)-3], true},
		{"bad tag", []byte{0x80}, true},
		{"field number 0", []byte{0x02, 0x00}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want logv1.ConsumeBatchResponse
			wantErr := proto.Unmarshal(tt.wire, &want)
			if (wantErr != nil) != tt.wantErr {
				t.Fatalf("proto.Unmarshal: %v, want an error: %v", wantErr, tt.wantErr)
			}
			var got batch
			err := decodeInto(&got, tt.wire)
			switch {
			case tt.wantErr && !errors.Is(err, errBatchWire):
				t.Fatalf("decode = %v, want errBatchWire", err)
			case tt.wantErr:
				return
			case err != nil:
				t.Fatalf("decode: %v", err)
			}
			if d := sameBatch(&got, &want); d != "" {
				t.Fatalf("decode: %s", d)
			}
		})
	}
}

// TestDecodeBatchValuesDoNotOverlap: appending to a decoded value never
// writes into the message it came from.
func TestDecodeBatchValuesDoNotOverlap(t *testing.T) {
	wire := marshalBatch(t, &logv1.Record{Value: []byte("one"), Offset: 1}, &logv1.Record{Value: []byte("two"), Offset: 2})
	var b batch
	if err := decodeInto(&b, wire); err != nil {
		t.Fatal(err)
	}
	_ = append(b.recs[0].Value, "XXXXXXXXXXXXXXXX"...)
	if string(b.recs[1].Value) != "two" || b.recs[1].Offset != 2 {
		t.Fatalf("after appending to record 0, record 1 = %q at %d", b.recs[1].Value, b.recs[1].Offset)
	}
}

// TestDecodeBatchReuse: a batch decoded again holds the new message's
// records only, none of the old one's fields.
func TestDecodeBatchReuse(t *testing.T) {
	var b batch
	first := marshalBatch(t, &logv1.Record{Value: []byte("old"), Offset: 1, Term: 4, Type: 5, Timestamp: 6}, &logv1.Record{Value: []byte("old too"), Offset: 2})
	if err := decodeInto(&b, first); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		recs []*logv1.Record
	}{
		{"fewer records", []*logv1.Record{{Offset: 9}}},
		{"more records", []*logv1.Record{{Value: []byte("a"), Offset: 10}, {Offset: 11}, {Value: []byte("c"), Offset: 12, Timestamp: 1}}},
		{"none", nil},
	} {
		want := &logv1.ConsumeBatchResponse{Records: tc.recs}
		if err := decodeInto(&b, marshalBatch(t, tc.recs...)); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if d := sameBatch(&b, want); d != "" {
			t.Fatalf("%s: %s", tc.name, d)
		}
	}
}

// TestBatchCodec: the codec decodes a batch from buffers gRPC then frees,
// and hands every other message to the proto codec.
func TestBatchCodec(t *testing.T) {
	c := newBatchCodec()
	if c.Name() != "proto" {
		t.Fatalf("Name() = %q, want proto (the content-subtype servers know)", c.Name())
	}
	wire := marshalBatch(t, &logv1.Record{Value: []byte("hello"), Offset: 1}, &logv1.Record{Value: []byte("world"), Offset: 2})
	// In two buffers, as it arrives in two frames; overwritten afterwards.
	first, second := append([]byte(nil), wire[:5]...), append([]byte(nil), wire[5:]...)
	var b batch
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(first), mem.SliceBuffer(second)}, &b); err != nil {
		t.Fatal(err)
	}
	clear(first)
	clear(second)
	if len(b.recs) != 2 || string(b.recs[0].Value) != "hello" || string(b.recs[1].Value) != "world" {
		t.Fatalf("decoded %v", b.recs)
	}
	req := &logv1.ConsumeBatchRequest{Offset: 3, EndOffset: 9, Follow: true}
	data, err := c.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var back logv1.ConsumeBatchRequest
	if err := c.Unmarshal(data, &back); err != nil || !proto.Equal(&back, req) {
		t.Fatalf("request through the codec = %v, %v; want %v", &back, err, req)
	}
}

// FuzzDecodeBatch: on any input, decode fails exactly when
// proto.Unmarshal does, and otherwise gives the same records.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(marshalBatch(f, &logv1.Record{Value: []byte("hello"), Offset: 7, Timestamp: 5}))
	f.Add(marshalBatch(f, &logv1.Record{Offset: 1}, &logv1.Record{Value: []byte("a\nb"), Offset: 2, Term: 1, Type: 2}))
	f.Add([]byte{0x0a, 0x02, 0x08, 0x01, 0x4a, 0x00})
	f.Fuzz(func(t *testing.T, wire []byte) {
		var want logv1.ConsumeBatchResponse
		var got batch
		wantErr := proto.Unmarshal(wire, &want)
		err := decodeInto(&got, wire)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("decode: %v; proto.Unmarshal: %v", err, wantErr)
		}
		if err == nil {
			if d := sameBatch(&got, &want); d != "" {
				t.Fatalf("decode: %s", d)
			}
		}
	})
}

// benchBatch is a ConsumeBatchResponse of 1 MiB of 256-byte records with
// times, as a server sends them.
func benchBatch(b *testing.B) []byte {
	var recs []*logv1.Record
	for i := range (1 << 20) / 256 {
		recs = append(recs, &logv1.Record{Value: bytes.Repeat([]byte{'a' + byte(i%26)}, 256), Offset: uint64(1_000_000 + i), Timestamp: 1_796_216_400_000_000_000 + int64(i)})
	}
	return marshalBatch(b, recs...)
}

func BenchmarkDecodeBatch(b *testing.B) {
	wire := benchBatch(b)
	b.Run("batch", func(b *testing.B) {
		b.SetBytes(int64(len(wire)))
		b.ReportAllocs()
		var m batch
		for b.Loop() {
			if err := decodeInto(&m, wire); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto.Unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(wire)))
		b.ReportAllocs()
		for b.Loop() {
			var m logv1.ConsumeBatchResponse
			if err := proto.Unmarshal(wire, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
