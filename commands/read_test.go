package commands

import (
	"bytes"
	"testing"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

func TestResolveFrom(t *testing.T) {
	tests := []struct {
		name         string
		from         int64
		lowest, next uint64
		want         uint64
	}{
		{"absolute", 5, 0, 10, 5},
		{"last three", -3, 0, 10, 7},
		{"more than retained", -30, 4, 10, 4},
		{"empty log", -1, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := resolveFrom(tt.from, tt.lowest, tt.next); got != tt.want {
				t.Fatalf("resolveFrom(%d, %d, %d) = %d, want %d", tt.from, tt.lowest, tt.next, got, tt.want)
			}
		})
	}
}

func TestRecordWriterGolden(t *testing.T) {
	recs := []*logv1.Record{{Offset: 7, Value: []byte("héllo")}, {Offset: 8, Value: []byte{0xff, 0x00}}}
	tests := []struct{ format, want string }{
		{"text", "7\théllo\n8\t\xff\x00\n"},
		{"raw", "héllo\n\xff\x00\n"},
		{"json", `{"offset":7,"value":"héllo"}` + "\n" + `{"offset":8,"value":"/wA=","encoding":"base64"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			w, err := recordWriter(tt.format)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			for _, r := range recs {
				if err := w(&b, r); err != nil {
					t.Fatal(err)
				}
			}
			if b.String() != tt.want {
				t.Fatalf("%s output = %q, want %q", tt.format, b.String(), tt.want)
			}
		})
	}
	if _, err := recordWriter("yaml"); ExitCode(err) != ExitUsage {
		t.Fatalf("unknown format: %v, want a usage error", err)
	}
}
