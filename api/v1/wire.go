package logv1

import "google.golang.org/protobuf/encoding/protowire"

// Field numbers of ConsumeBatchResponse and Record (log.proto), for the code
// that encodes or decodes ConsumeBatchResponse by hand because the generated
// code costs too much per record there: servers encode it with
// AppendBatchRecord, clients decode it in place. TestFieldNumbers checks them
// against log.proto.
const (
	ConsumeBatchResponseRecordsField protowire.Number = 1
	RecordValueField                 protowire.Number = 1
	RecordOffsetField                protowire.Number = 2
	RecordTermField                  protowire.Number = 3
	RecordTypeField                  protowire.Number = 4
	RecordTimestampField             protowire.Number = 5
)

// SizeBatchRecord is the number of bytes AppendBatchRecord appends for a
// record of value, off and ts.
func SizeBatchRecord(value []byte, off uint64, ts int64) int {
	return protowire.SizeTag(ConsumeBatchResponseRecordsField) + protowire.SizeBytes(sizeRecord(value, off, ts))
}

// AppendBatchRecord appends to b one element of ConsumeBatchResponse's
// records: a Record with Value value, Offset off and Timestamp ts, encoded as
// proto.Marshal encodes it (fields in order, zero fields left out). A
// ConsumeBatchResponse is its records' encodings back to back, so
// appending each record in turn to an empty b encodes one.
func AppendBatchRecord(b []byte, value []byte, off uint64, ts int64) []byte {
	b = protowire.AppendTag(b, ConsumeBatchResponseRecordsField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(sizeRecord(value, off, ts)))
	if len(value) > 0 {
		b = protowire.AppendTag(b, RecordValueField, protowire.BytesType)
		b = protowire.AppendBytes(b, value)
	}
	if off != 0 {
		b = protowire.AppendTag(b, RecordOffsetField, protowire.VarintType)
		b = protowire.AppendVarint(b, off)
	}
	if ts != 0 {
		b = protowire.AppendTag(b, RecordTimestampField, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(ts))
	}
	return b
}

// sizeRecord is the size of the Record AppendBatchRecord encodes, without
// its tag and length.
func sizeRecord(value []byte, off uint64, ts int64) int {
	n := 0
	if len(value) > 0 {
		n += protowire.SizeTag(RecordValueField) + protowire.SizeBytes(len(value))
	}
	if off != 0 {
		n += protowire.SizeTag(RecordOffsetField) + protowire.SizeVarint(off)
	}
	if ts != 0 {
		n += protowire.SizeTag(RecordTimestampField) + protowire.SizeVarint(uint64(ts))
	}
	return n
}
