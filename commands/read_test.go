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
		{"below retained", 2, 4, 10, 4},
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
	recs := []*logv1.Record{{Offset: 7, Value: []byte("héllo")}, {Offset: 8, Value: []byte{0xff, 0x00}, Timestamp: 1_796_216_400_000_000_123}, {Offset: 9, Value: []byte("\x1b[31mred\\\r\n\u0085")}}
	tests := []struct {
		name, format string
		delim        string
		terminal     bool
		want         string
	}{
		{"text", "text", "\n", false, "7\théllo\n8\t\xff\x00\n9\t\x1b[31mred\\\r\n\u0085\n"},
		{"text on a terminal", "text", "\n", true, "7\théllo\n8\t\\xff\\x00\n9\t\\x1b[31mred\\\\\\r\\n\\u0085\n"},
		{"raw", "raw", "\n", true, "héllo\n\xff\x00\n\x1b[31mred\\\r\n\u0085\n"},
		{"raw NUL", "raw", "\x00", false, "héllo\x00\xff\x00\x00\x1b[31mred\\\r\n\u0085\x00"},
		{"json", "json", "\n", true, `{"offset":7,"value":"héllo"}` + "\n" + `{"offset":8,"time":"2026-12-02T13:00:00.000000123Z","value":"/wA=","encoding":"base64"}` + "\n" + `{"offset":9,"value":"\u001b[31mred\\\r\n` + "\u0085" + `"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := recordWriter(tt.format, []byte(tt.delim), tt.terminal)
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
	if _, err := recordWriter("yaml", nil, false); ExitCode(err) != ExitUsage {
		t.Fatalf("unknown format: %v, want a usage error", err)
	}
}
