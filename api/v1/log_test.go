package logv1

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The encodings below are built by hand from the original proglog field
// numbers, so they stand for what an existing proglog client sends and
// expects. The generated code must produce and accept exactly these bytes.

func bookRecord(value []byte, offset, term uint64, typ uint32) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, value)
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, offset)
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, term)
	b = protowire.AppendTag(b, 4, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(typ))
	return b
}

func embed(num protowire.Number, msg []byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

func varintField(num protowire.Number, v uint64) []byte {
	b := protowire.AppendTag(nil, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatalf("marshal %T: %v", m, err)
	}
	return b
}

func TestRecordWireCompatible(t *testing.T) {
	rec := &Record{Value: []byte("hello world"), Offset: 300, Term: 7, Type: 2}
	want := bookRecord([]byte("hello world"), 300, 7, 2)
	if got := marshal(t, rec); !bytes.Equal(got, want) {
		t.Fatalf("Record encodes as\n%x\nwant\n%x", got, want)
	}

	var back Record
	if err := proto.Unmarshal(want, &back); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&back, rec) {
		t.Fatalf("decoded %v, want %v", &back, rec)
	}
}

func TestProduceRequestWireCompatible(t *testing.T) {
	req := &ProduceRequest{Record: &Record{Value: []byte("v"), Offset: 1, Term: 2, Type: 3}}
	want := embed(1, bookRecord([]byte("v"), 1, 2, 3))
	if got := marshal(t, req); !bytes.Equal(got, want) {
		t.Fatalf("ProduceRequest encodes as\n%x\nwant\n%x", got, want)
	}
	var back ProduceRequest
	if err := proto.Unmarshal(want, &back); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&back, req) {
		t.Fatalf("decoded %v, want %v", &back, req)
	}
}

func TestConsumeResponseRecordIsField2(t *testing.T) {
	// The original ConsumeResponse carries its record at field 2, not 1.
	var rec []byte
	rec = protowire.AppendTag(rec, 1, protowire.BytesType)
	rec = protowire.AppendBytes(rec, []byte("payload"))
	rec = append(rec, varintField(2, 42)...)
	want := embed(2, rec)

	var resp ConsumeResponse
	if err := proto.Unmarshal(want, &resp); err != nil {
		t.Fatal(err)
	}
	if got := resp.GetRecord(); string(got.GetValue()) != "payload" || got.GetOffset() != 42 {
		t.Fatalf("decoded record %v, want value %q at offset 42", got, "payload")
	}
	if len(resp.ProtoReflect().GetUnknown()) != 0 {
		t.Fatalf("field 2 was not recognised as the record: unknown bytes %x", resp.ProtoReflect().GetUnknown())
	}
	if got := marshal(t, &resp); !bytes.Equal(got, want) {
		t.Fatalf("ConsumeResponse round trip gives\n%x\nwant\n%x", got, want)
	}
}

func TestScalarMessagesWireCompatible(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  proto.Message
		want []byte
	}{
		{"ProduceResponse", &ProduceResponse{Offset: 1 << 40}, varintField(1, 1<<40)},
		{"ConsumeRequest", &ConsumeRequest{Offset: 129}, varintField(1, 129)},
		{"GetServersRequest", &GetServersRequest{}, nil},
		{
			"GetServersResponse",
			&GetServersResponse{Servers: []*Server{
				{Id: "a", RpcAddr: "127.0.0.1:8400", IsLeader: true},
				{Id: "b", RpcAddr: "127.0.0.1:8401"},
			}},
			func() []byte {
				server := func(id, addr string, leader bool) []byte {
					var b []byte
					b = protowire.AppendTag(b, 1, protowire.BytesType)
					b = protowire.AppendString(b, id)
					b = protowire.AppendTag(b, 2, protowire.BytesType)
					b = protowire.AppendString(b, addr)
					if leader {
						b = append(b, varintField(3, 1)...)
					}
					return b
				}
				b := embed(1, server("a", "127.0.0.1:8400", true))
				return append(b, embed(1, server("b", "127.0.0.1:8401", false))...)
			}(),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := marshal(t, tc.msg); !bytes.Equal(got, tc.want) {
				t.Fatalf("encodes as\n%x\nwant\n%x", got, tc.want)
			}
			back := tc.msg.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(tc.want, back); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(back, tc.msg) {
				t.Fatalf("decoded %v, want %v", back, tc.msg)
			}
		})
	}
}

// TestNewServerFieldsUseNewNumbers checks that the fields added to
// Server use new numbers only: a Server without them encodes exactly as the
// original one did, and their bytes come after the original fields.
func TestNewServerFieldsUseNewNumbers(t *testing.T) {
	old := marshal(t, &Server{Id: "a", RpcAddr: "h:1", IsLeader: true})
	full := marshal(t, &Server{Id: "a", RpcAddr: "h:1", IsLeader: true, IsVoter: true, State: "Leader", NextOffset: 9})
	if !bytes.HasPrefix(full, old) {
		t.Fatalf("new Server fields changed the original encoding:\n%x\n%x", full, old)
	}
	rest := full[len(old):]
	for len(rest) > 0 {
		num, _, n := protowire.ConsumeField(rest)
		if n < 0 {
			t.Fatalf("bad field in %x", rest)
		}
		if num < 4 {
			t.Fatalf("added Server field uses number %d, which the original already has", num)
		}
		rest = rest[n:]
	}
}

// TestRecordTimestampUsesANewNumber checks that a Record without a timestamp
// encodes exactly as the original one did, and that the timestamp follows the
// original fields as field 5.
func TestRecordTimestampUsesANewNumber(t *testing.T) {
	old := bookRecord([]byte("v"), 3, 1, 2)
	if got := marshal(t, &Record{Value: []byte("v"), Offset: 3, Term: 1, Type: 2}); !bytes.Equal(got, old) {
		t.Fatalf("Record without timestamp encodes as\n%x\nwant\n%x", got, old)
	}
	rec := &Record{Value: []byte("v"), Offset: 3, Term: 1, Type: 2, Timestamp: 1_800_000_000_123_456_789}
	want := append(old, varintField(5, 1_800_000_000_123_456_789)...)
	if got := marshal(t, rec); !bytes.Equal(got, want) {
		t.Fatalf("Record with timestamp encodes as\n%x\nwant\n%x", got, want)
	}
	var back Record
	if err := proto.Unmarshal(want, &back); err != nil || !proto.Equal(&back, rec) {
		t.Fatalf("decoded %v, %v; want %v", &back, err, rec)
	}
}

// TestDescriptor pins the package, the original field numbers and types, and
// the RPCs with their streaming shape.
func TestDescriptor(t *testing.T) {
	fd := File_api_v1_log_proto
	if fd.Package() != "log.v1" {
		t.Fatalf("proto package %q, want log.v1", fd.Package())
	}

	fields := []struct {
		msg, field string
		num        protoreflect.FieldNumber
		kind       protoreflect.Kind
		list       bool
	}{
		{"Record", "value", 1, protoreflect.BytesKind, false},
		{"Record", "offset", 2, protoreflect.Uint64Kind, false},
		{"Record", "term", 3, protoreflect.Uint64Kind, false},
		{"Record", "type", 4, protoreflect.Uint32Kind, false},
		{"ProduceRequest", "record", 1, protoreflect.MessageKind, false},
		{"ProduceResponse", "offset", 1, protoreflect.Uint64Kind, false},
		{"ConsumeRequest", "offset", 1, protoreflect.Uint64Kind, false},
		{"ConsumeResponse", "record", 2, protoreflect.MessageKind, false},
		{"Server", "id", 1, protoreflect.StringKind, false},
		{"Server", "rpc_addr", 2, protoreflect.StringKind, false},
		{"Server", "is_leader", 3, protoreflect.BoolKind, false},
		{"Server", "is_voter", 4, protoreflect.BoolKind, false},
		{"Server", "state", 5, protoreflect.StringKind, false},
		{"Server", "next_offset", 6, protoreflect.Uint64Kind, false},
		{"Server", "durability", 8, protoreflect.EnumKind, false},
		{"ProduceRequest", "producer_id", 2, protoreflect.StringKind, false},
		{"ProduceRequest", "sequence", 3, protoreflect.Uint64Kind, false},
		{"ProduceResponse", "durability", 2, protoreflect.EnumKind, false},
		{"ProduceResponse", "duplicate", 3, protoreflect.BoolKind, false},
		{"ProduceBatchRequest", "producer_id", 2, protoreflect.StringKind, false},
		{"ProduceBatchRequest", "sequence", 3, protoreflect.Uint64Kind, false},
		{"ProduceBatchResponse", "durability", 3, protoreflect.EnumKind, false},
		{"ProduceBatchResponse", "duplicate", 4, protoreflect.BoolKind, false},
		{"GetServersResponse", "servers", 1, protoreflect.MessageKind, true},
		{"GetServersResponse", "self", 2, protoreflect.MessageKind, false},
		{"ProduceBatchRequest", "records", 1, protoreflect.MessageKind, true},
		{"ProduceBatchResponse", "first_offset", 1, protoreflect.Uint64Kind, false},
		{"ProduceBatchResponse", "count", 2, protoreflect.Uint32Kind, false},
		{"ConsumeBatchRequest", "offset", 1, protoreflect.Uint64Kind, false},
		{"ConsumeBatchRequest", "max_bytes", 2, protoreflect.Uint32Kind, false},
		{"ConsumeBatchRequest", "follow", 3, protoreflect.BoolKind, false},
		{"ConsumeBatchRequest", "end_offset", 4, protoreflect.Uint64Kind, false},
		{"ConsumeBatchResponse", "records", 1, protoreflect.MessageKind, true},
		{"GetOffsetsResponse", "lowest_offset", 1, protoreflect.Uint64Kind, false},
		{"GetOffsetsResponse", "next_offset", 2, protoreflect.Uint64Kind, false},
		{"Record", "timestamp", 5, protoreflect.Int64Kind, false},
		{"GetOffsetForTimeRequest", "timestamp", 1, protoreflect.Int64Kind, false},
		{"GetOffsetForTimeResponse", "offset", 1, protoreflect.Uint64Kind, false},
	}
	for _, f := range fields {
		md := fd.Messages().ByName(protoreflect.Name(f.msg))
		if md == nil {
			t.Errorf("message %s missing", f.msg)
			continue
		}
		d := md.Fields().ByName(protoreflect.Name(f.field))
		if d == nil {
			t.Errorf("%s.%s missing", f.msg, f.field)
			continue
		}
		if d.Number() != f.num || d.Kind() != f.kind || d.IsList() != f.list {
			t.Errorf("%s.%s = #%d %v list=%v, want #%d %v list=%v",
				f.msg, f.field, d.Number(), d.Kind(), d.IsList(), f.num, f.kind, f.list)
		}
	}

	type shape struct {
		in, out                    string
		clientStream, serverStream bool
	}
	want := map[string]shape{
		"Produce":            {"ProduceRequest", "ProduceResponse", false, false},
		"Consume":            {"ConsumeRequest", "ConsumeResponse", false, false},
		"ConsumeStream":      {"ConsumeRequest", "ConsumeResponse", false, true},
		"ProduceStream":      {"ProduceRequest", "ProduceResponse", true, true},
		"GetServers":         {"GetServersRequest", "GetServersResponse", false, false},
		"ProduceBatch":       {"ProduceBatchRequest", "ProduceBatchResponse", false, false},
		"ConsumeBatchStream": {"ConsumeBatchRequest", "ConsumeBatchResponse", false, true},
		"GetOffsets":         {"GetOffsetsRequest", "GetOffsetsResponse", false, false},
		"GetOffsetForTime":   {"GetOffsetForTimeRequest", "GetOffsetForTimeResponse", false, false},
		"ProduceBatchStream": {"ProduceBatchRequest", "ProduceBatchResponse", true, true},
	}
	sd := fd.Services().ByName("Log")
	if sd == nil || sd.FullName() != "log.v1.Log" {
		t.Fatal("service log.v1.Log missing")
	}
	if n := sd.Methods().Len(); n != len(want) {
		t.Errorf("service has %d methods, want %d", n, len(want))
	}
	for name, w := range want {
		m := sd.Methods().ByName(protoreflect.Name(name))
		if m == nil {
			t.Errorf("rpc %s missing", name)
			continue
		}
		got := shape{string(m.Input().Name()), string(m.Output().Name()), m.IsStreamingClient(), m.IsStreamingServer()}
		if got != w {
			t.Errorf("rpc %s = %+v, want %+v", name, got, w)
		}
	}
	// The full method names are what existing clients put on the wire.
	if Log_Produce_FullMethodName != "/log.v1.Log/Produce" || Log_ConsumeStream_FullMethodName != "/log.v1.Log/ConsumeStream" {
		t.Errorf("unexpected method names %q, %q", Log_Produce_FullMethodName, Log_ConsumeStream_FullMethodName)
	}
}
