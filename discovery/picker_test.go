package discovery

import (
	"context"
	"errors"
	"slices"
	"testing"

	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/resolver"
)

// fakeSubConn stands in for a ready connection; only its identity matters.
type fakeSubConn struct {
	balancer.SubConn
	name string
}

func buildPicker(leader bool, followers ...string) (balancer.Picker, map[balancer.SubConn]string) {
	info := base.PickerBuildInfo{ReadySCs: map[balancer.SubConn]base.SubConnInfo{}}
	names := map[balancer.SubConn]string{}
	if leader {
		sc := &fakeSubConn{name: "leader"}
		info.ReadySCs[sc] = base.SubConnInfo{Address: resolver.Address{Addr: "leader", Attributes: attributes.New(leaderKey{}, true)}}
		names[sc] = "leader"
	}
	for _, f := range followers {
		sc := &fakeSubConn{name: f}
		info.ReadySCs[sc] = base.SubConnInfo{Address: resolver.Address{Addr: f}}
		names[sc] = f
	}
	return pickerBuilder{}.Build(info), names
}

func TestPicker(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		leader    bool
		followers []string
		method    string
		ctx       context.Context
		want      []string // picks in a row, in any order; nil: no connection
	}{
		{"produce to leader", true, []string{"f1", "f2"}, "Produce", ctx, []string{"leader", "leader"}},
		{"batch to leader", true, []string{"f1"}, "ProduceBatch", ctx, []string{"leader"}},
		{"stream to leader", true, []string{"f1"}, "ProduceStream", ctx, []string{"leader"}},
		{"produce waits for a leader", false, []string{"f1", "f2"}, "Produce", ctx, nil},
		{"consume over followers", true, []string{"f1", "f2"}, "Consume", ctx, []string{"f1", "f2", "f1", "f2"}},
		{"stream over followers", true, []string{"f1", "f2"}, "ConsumeBatchStream", ctx, []string{"f1", "f2"}},
		{"offsets over followers", true, []string{"f1", "f2"}, "GetOffsets", ctx, []string{"f1", "f2"}},
		{"consume falls back to leader", true, nil, "ConsumeStream", ctx, []string{"leader", "leader"}},
		{"consume without any", false, nil, "Consume", ctx, nil},
		{"servers anywhere", true, []string{"f1"}, "GetServers", ctx, []string{"leader", "f1"}},
		{"servers without leader", false, []string{"f1"}, "GetServers", ctx, []string{"f1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, names := buildPicker(tc.leader, tc.followers...)
			info := balancer.PickInfo{FullMethodName: "/log.v1.Log/" + tc.method, Ctx: tc.ctx}
			if tc.want == nil {
				if _, err := p.Pick(info); !errors.Is(err, balancer.ErrNoSubConnAvailable) {
					t.Fatalf("Pick = %v, want ErrNoSubConnAvailable", err)
				}
				return
			}
			got := map[string]int{}
			for range tc.want {
				res, err := p.Pick(info)
				if err != nil {
					t.Fatalf("Pick: %v", err)
				}
				got[names[res.SubConn]]++
			}
			want := map[string]int{}
			for _, w := range tc.want {
				want[w]++
			}
			if len(got) != len(want) {
				t.Fatalf("picks %v, want %v", got, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Fatalf("picks %v, want %v", got, want)
				}
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		target  string
		want    []string
		wantErr bool
	}{
		{target: "proglog://127.0.0.1:8400", want: []string{"127.0.0.1:8400"}},
		{target: "127.0.0.1:8400", want: []string{"127.0.0.1:8400"}},
		{target: "proglog://a:1,b:2, c:3", want: []string{"a:1", "b:2", "c:3"}},
		{target: "a:1,,b:2", want: []string{"a:1", "b:2"}},
		{target: "[::1]:8400", want: []string{"[::1]:8400"}},
		{target: "", wantErr: true},
		{target: "proglog://", wantErr: true},
		{target: "proglog://a", wantErr: true},
		{target: "a:1,b", wantErr: true},
		{target: ":8400", wantErr: true},
	} {
		t.Run(tc.target, func(t *testing.T) {
			got, err := ParseTarget(tc.target)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseTarget(%q) error = %v, want error %v", tc.target, err, tc.wantErr)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("ParseTarget(%q) = %q, want %q", tc.target, got, tc.want)
			}
		})
	}
}
