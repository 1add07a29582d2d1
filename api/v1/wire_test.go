package logv1

import (
	"bytes"
	"math"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

func TestFieldNumbers(t *testing.T) {
	for _, c := range []struct {
		msg   proto.Message
		field protoreflect.Name
		num   protowire.Number
	}{
		{&ConsumeBatchResponse{}, "records", ConsumeBatchResponseRecordsField},
		{&Record{}, "value", RecordValueField},
		{&Record{}, "offset", RecordOffsetField},
		{&Record{}, "term", RecordTermField},
		{&Record{}, "type", RecordTypeField},
		{&Record{}, "timestamp", RecordTimestampField},
	} {
		md := c.msg.ProtoReflect().Descriptor()
		fd := md.Fields().ByName(c.field)
		if fd == nil {
			t.Errorf("%s has no field %s", md.FullName(), c.field)
			continue
		}
		if fd.Number() != c.num {
			t.Errorf("%s.%s is field %d, the constant says %d", md.FullName(), c.field, fd.Number(), c.num)
		}
	}
}

// TestAppendBatchRecord checks that records appended one after another are
// byte for byte what proto.Marshal makes of the ConsumeBatchResponse holding
// them, and that SizeBatchRecord measures each.
func TestAppendBatchRecord(t *testing.T) {
	big := bytes.Repeat([]byte{0xab}, 70000) // a length of 3 varint bytes
	for _, tc := range []struct {
		name string
		recs []*Record
	}{
		{"none", nil},
		{"one", []*Record{{Value: []byte("hello"), Offset: 7, Timestamp: 1_700_000_000_000_000_000}}},
		{"zero fields left out", []*Record{{}, {Value: []byte("x")}, {Offset: 1}, {Timestamp: 1}}},
		{"negative timestamp", []*Record{{Value: []byte("v"), Offset: 3, Timestamp: -1}}},
		{"extremes", []*Record{{Value: big, Offset: math.MaxUint64, Timestamp: math.MaxInt64}, {Value: []byte{0}, Offset: 1 << 63, Timestamp: math.MinInt64}}},
		{"many", func() []*Record {
			var rs []*Record
			for i := range 300 {
				rs = append(rs, &Record{Value: bytes.Repeat([]byte{byte(i)}, i), Offset: uint64(i) * 1000, Timestamp: int64(i) << 40})
			}
			return rs
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(&ConsumeBatchResponse{Records: tc.recs})
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			for i, r := range tc.recs {
				before := len(got)
				got = AppendBatchRecord(got, r.Value, r.Offset, r.Timestamp)
				if n, size := len(got)-before, SizeBatchRecord(r.Value, r.Offset, r.Timestamp); n != size {
					t.Errorf("record %d: appended %d bytes, SizeBatchRecord says %d", i, n, size)
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encoded\n%x\nproto.Marshal gives\n%x", got, want)
			}
		})
	}
}
