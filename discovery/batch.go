package discovery

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the proto codec batchCodec falls back on
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

// batch is one ConsumeBatchResponse of a read, decoded by batchCodec into
// memory it keeps for the next: the message's bytes (buf, which the records'
// values are slices of), its records (recs, pointing into store). A read
// alternates between two, so that one is decoded while the records of the
// other are handed to the reader; a record is thus valid until the reader's
// function returns.
type batch struct {
	buf   []byte
	store []logv1.Record
	recs  []*logv1.Record
}

// batchCodec is gRPC's proto codec with a decoder of its own for a *batch,
// which a read receives ConsumeBatchResponses into: the message is copied
// out of gRPC's buffers once, into memory the batch reuses, and every
// record's value is a slice of that copy, where proto.Unmarshal allocates
// and copies each record and each value and grows the slice of records as
// it goes (about 40 % of the CPU time of a consume -o raw of 256-byte
// records went there). Every other message goes to the proto codec. Its name is the
// proto codec's, so requests are marked application/grpc+proto and any
// server decodes them.
type batchCodec struct{ proto encoding.CodecV2 }

var _ encoding.CodecV2 = batchCodec{}

// newBatchCodec returns a batchCodec over the registered proto codec.
func newBatchCodec() batchCodec { return batchCodec{proto: encoding.GetCodecV2("proto")} }

func (c batchCodec) Name() string { return c.proto.Name() }

func (c batchCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c batchCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*batch)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	// A copy: gRPC reuses its buffers once Unmarshal returns.
	n := data.Len()
	if cap(b.buf) < n {
		b.buf = make([]byte, n)
	}
	b.buf = b.buf[:n]
	data.CopyTo(b.buf)
	return b.decode()
}

// errBatchWire is returned for a ConsumeBatchResponse that is not valid
// protobuf.
var errBatchWire = errors.New("discovery: malformed ConsumeBatchResponse")

// decode decodes the ConsumeBatchResponse in b.buf into b.recs as
// proto.Unmarshal would, except that the records' values are slices of
// b.buf and unknown fields are dropped rather than kept. It scans b.buf
// twice: once to count the records, so that they fit in b.store (grown only
// when too small), then to fill them in.
func (b *batch) decode() error {
	n := 0
	for rest := b.buf; len(rest) > 0; {
		num, typ, l, err := consumeTag(rest)
		if err != nil {
			return fmt.Errorf("%w: %v", errBatchWire, err)
		}
		v := protowire.ConsumeFieldValue(num, typ, rest[l:])
		if v < 0 {
			return fmt.Errorf("%w: %v", errBatchWire, protowire.ParseError(v))
		}
		if num == logv1.ConsumeBatchResponseRecordsField && typ == protowire.BytesType {
			n++
		}
		rest = rest[l+v:]
	}
	if cap(b.store) < n {
		b.store = make([]logv1.Record, n)
		b.recs = make([]*logv1.Record, n)
	}
	b.store, b.recs = b.store[:n], b.recs[:n]
	i := 0
	for rest := b.buf; len(rest) > 0; {
		num, typ, l, _ := consumeTag(rest) // checked in the first scan
		rest = rest[l:]
		if num != logv1.ConsumeBatchResponseRecordsField || typ != protowire.BytesType {
			rest = rest[protowire.ConsumeFieldValue(num, typ, rest):]
			continue
		}
		body, l := protowire.ConsumeBytes(rest)
		rest = rest[l:]
		r := &b.store[i]
		*r = logv1.Record{}
		if err := decodeRecord(body, r); err != nil {
			b.recs = b.recs[:0]
			return err
		}
		b.recs[i] = r
		i++
	}
	return nil
}

// decodeRecord decodes one Record's fields from b into r; a field seen
// twice takes its last value, as in proto.Unmarshal.
func decodeRecord(b []byte, r *logv1.Record) error {
	for len(b) > 0 {
		var num protowire.Number
		var typ protowire.Type
		if c := b[0]; c < 0x80 && c >= 1<<3 { // a one-byte tag: fields 1 to 15
			num, typ = protowire.Number(c>>3), protowire.Type(c&7)
			b = b[1:]
		} else {
			var l int
			var err error
			if num, typ, l, err = consumeTag(b); err != nil {
				return fmt.Errorf("%w: record: %v", errBatchWire, err)
			}
			b = b[l:]
		}
		var n int
		switch {
		case num == logv1.RecordValueField && typ == protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(b)
			switch {
			case n >= 0 && len(v) == 0:
				r.Value = nil // as proto.Unmarshal leaves an empty value
			case n >= 0:
				r.Value = v[:len(v):len(v)] // appending to it must not overwrite the next field
			}
		case typ == protowire.VarintType && (num == logv1.RecordOffsetField || num == logv1.RecordTermField || num == logv1.RecordTypeField || num == logv1.RecordTimestampField):
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			switch num {
			case logv1.RecordOffsetField:
				r.Offset = v
			case logv1.RecordTermField:
				r.Term = v
			case logv1.RecordTypeField:
				r.Type = uint32(v)
			case logv1.RecordTimestampField:
				r.Timestamp = int64(v)
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: record field %d: %v", errBatchWire, num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}

// consumeTag is protowire.ConsumeTag, which returns the tag's length n,
// with an error where it fails or, as proto.Unmarshal does but
// protowire.ConsumeTag does not, for a field number above
// protowire.MaxValidNumber.
func consumeTag(b []byte) (num protowire.Number, typ protowire.Type, n int, err error) {
	num, typ, n = protowire.ConsumeTag(b)
	switch {
	case n < 0:
		return 0, 0, n, protowire.ParseError(n)
	case num > protowire.MaxValidNumber:
		return 0, 0, -1, fmt.Errorf("field number %d out of range", num)
	}
	return num, typ, n, nil
}
