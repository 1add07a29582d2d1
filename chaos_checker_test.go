package main

import (
	"fmt"
	"iter"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
)

// The checkers of the chaos tests: plain functions over a recorded history
// and the logs read from every node after the faults were healed. Each
// returns the problems it found (none: the property holds), so a run reports
// every verdict instead of stopping at the first.

// opKind is what a workload operation did.
type opKind uint8

const (
	opProduce opKind = iota // append Value; on success the log answered Off
	opConsume               // read Off; on success the log answered Value
)

// opOutcome is how an operation ended.
type opOutcome uint8

const (
	outOK         opOutcome = iota // answered: Off (produce) or Value (consume)
	outOutOfRange                  // consume: OUT_OF_RANGE, the offset is not (yet) in the log
	outUnknown                     // no answer (timeout, node gone, leader lost): a produce may or may not have happened
	outDropped                     // consume: OUT_OF_RANGE, the offset is below the lowest retained one: it was written, then dropped by retention
)

func (o opOutcome) String() string {
	return [...]string{"ok", "out-of-range", "unknown", "dropped"}[o]
}

// chaosOp is one operation of a history. Call and Return are monotonic times
// since the workload started; Return is when the outcome was known, also for
// an unknown one.
type chaosOp struct {
	Client  int
	Node    int // the node the request was sent to
	Kind    opKind
	Value   string // produce: the value sent; consume: the value read
	Off     uint64 // produce: the offset acknowledged; consume: the offset asked for
	Outcome opOutcome
	Call    time.Duration
	Return  time.Duration
	Err     string // why an operation failed (its gRPC code and message), for the run's report
	// Retries is how many times an exactly-once produce was sent again;
	// Duplicate says the answer was that an earlier attempt had appended it.
	Retries   int
	Duplicate bool
}

func (op chaosOp) String() string {
	switch {
	case op.Kind == opProduce && op.Outcome == outOK:
		return fmt.Sprintf("client %d produce %q → %d on node %d [%v, %v]", op.Client, op.Value, op.Off, op.Node, op.Call, op.Return)
	case op.Kind == opProduce:
		return fmt.Sprintf("client %d produce %q → %s on node %d [%v, %v]", op.Client, op.Value, op.Outcome, op.Node, op.Call, op.Return)
	case op.Outcome == outOK:
		return fmt.Sprintf("client %d consume %d → %q on node %d [%v, %v]", op.Client, op.Off, op.Value, op.Node, op.Call, op.Return)
	default:
		return fmt.Sprintf("client %d consume %d → %s on node %d [%v, %v]", op.Client, op.Off, op.Outcome, op.Node, op.Call, op.Return)
	}
}

// finalLogs are the logs read from every node after the heal: logs[i][k]
// is the value node i holds at offset base[i]+k; retention dropped the
// offsets below base[i]. A node that could not be read has a nil log and an
// error.
type finalLogs struct {
	names []string
	base  []uint64
	logs  [][]string
	errs  []error
}

// next is the offset after node i's last record.
func (f finalLogs) next(i int) uint64 { return f.base[i] + uint64(len(f.logs[i])) }

// droppedEverywhere counts up to the lowest base of the nodes read: the
// offsets no final read covers.
func (f finalLogs) droppedEverywhere() iter.Seq[uint64] {
	lowest, any := uint64(0), false
	for i := range f.logs {
		if f.errs[i] == nil && (!any || f.base[i] < lowest) {
			lowest, any = f.base[i], true
		}
	}
	return func(yield func(uint64) bool) {
		for off := range lowest {
			if !yield(off) {
				return
			}
		}
	}
}

// records calls yield with every offset and value node i holds.
func (f finalLogs) records(i int) iter.Seq2[uint64, string] {
	return func(yield func(uint64, string) bool) {
		for k, v := range f.logs[i] {
			if !yield(f.base[i]+uint64(k), v) {
				return
			}
		}
	}
}

// maxProblems bounds the problems a checker lists; the count is given after.
const maxProblems = 20

type problems []string

func (p *problems) add(format string, args ...any) {
	switch n := len(*p); {
	case n < maxProblems:
		*p = append(*p, fmt.Sprintf(format, args...))
	case n == maxProblems:
		*p = append(*p, "(more problems left out)")
	}
}

// checkLost (1): every acknowledged record is on every node at its offset
// with its value, unless retention dropped the offset on that node.
func checkLost(hist []chaosOp, final finalLogs) []string {
	var p problems
	for i, log := range final.logs {
		if final.errs[i] != nil {
			p.add("%s could not be read: %v", final.names[i], final.errs[i])
			continue
		}
		for _, op := range hist {
			if op.Kind != opProduce || op.Outcome != outOK || op.Off < final.base[i] {
				continue
			}
			switch {
			case op.Off >= final.next(i):
				p.add("%s lost %q acknowledged at offset %d: its log ends at %d (%s)", final.names[i], op.Value, op.Off, final.next(i), op)
			case log[op.Off-final.base[i]] != op.Value:
				p.add("%s holds %q at offset %d where %q was acknowledged (%s)", final.names[i], log[op.Off-final.base[i]], op.Off, op.Value, op)
			}
		}
	}
	return p
}

// checkUnique (2): no value at two offsets and no offset with two values,
// over everything seen: acknowledgements, reads during the run and the final
// logs of every node. Every produce sends a distinct value, and only
// exactly-once produces (with a producer id and sequence) are sent again, so
// a value at two offsets is a duplicate append: of a retried exactly-once
// produce, or of a plain one.
func checkUnique(hist []chaosOp, final finalLogs) []string {
	var p problems
	type seen struct {
		val, where string
	}
	at := map[uint64]seen{}
	where := map[string]struct {
		off   uint64
		where string
	}{}
	note := func(off uint64, val, src string) {
		if s, ok := at[off]; ok && s.val != val {
			p.add("offset %d holds %q (%s) and %q (%s)", off, s.val, s.where, val, src)
		} else if !ok {
			at[off] = seen{val, src}
		}
		if w, ok := where[val]; ok && w.off != off {
			p.add("value %q is at offset %d (%s) and at offset %d (%s)", val, w.off, w.where, off, src)
		} else if !ok {
			where[val] = struct {
				off   uint64
				where string
			}{off, src}
		}
	}
	for _, op := range hist {
		if op.Outcome == outOK {
			note(op.Off, op.Value, op.String())
		}
	}
	for i := range final.logs {
		for off, v := range final.records(i) {
			note(off, v, "final read of "+final.names[i])
		}
	}
	return p
}

// checkConvergence (3): every node has the same next offset and holds the
// same records at the offsets all of them retain.
func checkConvergence(final finalLogs) []string {
	var p problems
	ref := -1
	for i := range final.logs {
		if final.errs[i] != nil {
			p.add("%s could not be read: %v", final.names[i], final.errs[i])
			continue
		}
		if ref < 0 {
			ref = i
			continue
		}
		if a, b := final.next(ref), final.next(i); a != b {
			p.add("%s has next offset %d, %s has %d", final.names[ref], a, final.names[i], b)
		}
		lo, hi := max(final.base[ref], final.base[i]), min(final.next(ref), final.next(i))
		for off := lo; off < hi; off++ {
			a, b := final.logs[ref][off-final.base[ref]], final.logs[i][off-final.base[i]]
			if a != b {
				p.add("offset %d: %s holds %q, %s holds %q", off, final.names[ref], a, final.names[i], b)
				break
			}
		}
	}
	return p
}

// offsetsSample is the next offset of every node at one moment after the
// heal (-1: the node did not answer) and which node claimed to lead (-1:
// none).
type offsetsSample struct {
	At     time.Duration // since the heal
	Next   []int64
	Leader int
}

// checkLiveness (5): within `within` of the heal there is a moment when a
// leader is known and every other node's next offset has reached the
// leader's (the workload is stopped by then, so the leader's does not move).
func checkLiveness(samples []offsetsSample, names []string, within time.Duration) []string {
	for _, s := range samples {
		if s.At > within || s.Leader < 0 {
			continue
		}
		caught := true
		for _, n := range s.Next {
			caught = caught && n == s.Next[s.Leader]
		}
		if caught {
			return nil
		}
	}
	if len(samples) == 0 {
		return []string{"no samples of the nodes' offsets after the heal"}
	}
	var p problems
	last := samples[len(samples)-1]
	for _, s := range slices.Backward(samples) {
		if s.At <= within {
			last = s
			break
		}
	}
	if last.Leader < 0 {
		p.add("no leader %v after the heal", last.At)
		return p
	}
	for i, n := range last.Next {
		if n != last.Next[last.Leader] {
			p.add("%s at next offset %d, %v after the heal; leader %s at %d", names[i], n, last.At, names[last.Leader], last.Next[last.Leader])
		}
	}
	return p
}

// faultRecord is one fault the nemesis injected.
type faultRecord struct {
	Kind      string
	Target    string
	At        time.Duration // since the workload started
	Fired     bool          // the fault was applied (a running process signalled, a link cut, a disk shrunk)
	Effective bool          // and it had the effect it exists for (see the nemesis)
	Note      string
}

// checkFaults (6): at least min faults were effective.
func checkFaults(faults []faultRecord, min int) []string {
	n := 0
	for _, f := range faults {
		if f.Fired && f.Effective {
			n++
		}
	}
	if n < min {
		return []string{fmt.Sprintf("%d of %d faults were effective; want at least %d", n, len(faults), min)}
	}
	return nil
}

// Linearizability (4).
//
// The model is an append-only log with dense offsets from 0. produce(v)
// takes effect at one instant, when the log's next offset is n: v is stored
// at n and the answer is n. consume(off) answers the value at off, or
// OUT_OF_RANGE when next ≤ off. Because the log only grows and offsets are
// dense, "next ≤ off" is the same as "slot off is empty", so each offset is a
// register that goes once from empty to a value and then never changes:
//
//	produce(v) → k    slot k: empty → v
//	consume(k) → v    slot k holds v
//	consume(k) → OOR  slot k is empty
//
// and the history is checked one offset at a time (porcupine's Partition),
// which keeps the search small however long the run. What one slot alone
// cannot see is density: an answer at k shows that every slot j < k was
// filled by then. That is added back as one operation per slot, filled(j),
// whose interval is that of the earliest-returning operation that showed a
// slot ≥ j filled (an acknowledgement or a read of a value at k ≥ j); so
// "consume(j) → OOR" that begins after "produce → j+1" returned is caught.
//
// An unknown produce may or may not have taken effect. If its value is seen
// anywhere (a read, a final log) it took effect at that offset, at an
// unknown time: it becomes produce(v) → k with an infinite return. If it is
// seen nowhere it did not take effect as far as any observer can tell (the
// final reads cover every slot of every node), and it is left out. The final
// reads join the history as consumes of every offset of every node, plus one
// OUT_OF_RANGE at each node's end, after everything else.

type slotInput struct {
	Off   uint64
	Kind  uint8 // slotWrite, slotRead, slotFilled
	Value string
}

type slotOutput struct {
	Value string
	OOR   bool
}

const (
	slotWrite uint8 = iota
	slotRead
	slotFilled
)

var logModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		by := map[uint64][]porcupine.Operation{}
		for _, op := range history {
			off := op.Input.(slotInput).Off
			by[off] = append(by[off], op)
		}
		var parts [][]porcupine.Operation
		for _, off := range slices.Sorted(maps.Keys(by)) {
			parts = append(parts, by[off])
		}
		return parts
	},
	Init: func() any { return "" }, // empty; values are never empty
	Step: func(state, input, output any) (bool, any) {
		s, in := state.(string), input.(slotInput)
		switch in.Kind {
		case slotWrite:
			return s == "", in.Value
		case slotRead:
			out := output.(slotOutput)
			if out.OOR {
				return s == "", s
			}
			return s == out.Value, s
		default: // slotFilled
			return s != "", s
		}
	},
	DescribeOperation: func(input, output any) string {
		in := input.(slotInput)
		switch in.Kind {
		case slotWrite:
			return fmt.Sprintf("produce(%q) → %d", in.Value, in.Off)
		case slotRead:
			if out := output.(slotOutput); !out.OOR {
				return fmt.Sprintf("consume(%d) → %q", in.Off, out.Value)
			}
			return fmt.Sprintf("consume(%d) → out of range", in.Off)
		default:
			return fmt.Sprintf("filled(%d)", in.Off)
		}
	},
}

// linearizationOps turns a history and the final logs into porcupine
// operations of logModel.
func linearizationOps(hist []chaosOp, final finalLogs) []porcupine.Operation {
	// Where every value was seen, for unknown produces.
	seenAt := map[string]uint64{}
	for _, op := range hist {
		if op.Kind == opConsume && op.Outcome == outOK {
			if _, ok := seenAt[op.Value]; !ok {
				seenAt[op.Value] = op.Off
			}
		}
	}
	for i := range final.logs {
		for off, v := range final.records(i) {
			if _, ok := seenAt[v]; !ok {
				seenAt[v] = off
			}
		}
	}
	var end time.Duration
	for _, op := range hist {
		end = max(end, op.Return)
	}
	var ops []porcupine.Operation
	// filledBy[k]: the operation that returned first among those showing
	// slot k filled; suffix minima of it give filled(j).
	type shown struct {
		call, ret time.Duration
		ok        bool
	}
	filledBy := map[uint64]shown{}
	var top uint64
	show := func(off uint64, call, ret time.Duration) {
		if s, ok := filledBy[off]; !ok || ret < s.ret {
			filledBy[off] = shown{call, ret, true}
		}
		top = max(top, off)
	}
	for _, op := range hist {
		switch {
		case op.Kind == opProduce && op.Outcome == outOK:
			ops = append(ops, porcupine.Operation{ClientId: op.Client, Input: slotInput{Off: op.Off, Kind: slotWrite, Value: op.Value},
				Call: int64(op.Call), Output: slotOutput{}, Return: int64(op.Return)})
			show(op.Off, op.Call, op.Return)
		case op.Kind == opProduce && op.Outcome == outUnknown:
			if off, ok := seenAt[op.Value]; ok {
				ops = append(ops, porcupine.Operation{ClientId: op.Client, Input: slotInput{Off: off, Kind: slotWrite, Value: op.Value},
					Call: int64(op.Call), Output: slotOutput{}, Return: math.MaxInt64})
			}
		case op.Kind == opConsume && op.Outcome == outOK:
			ops = append(ops, porcupine.Operation{ClientId: op.Client, Input: slotInput{Off: op.Off, Kind: slotRead},
				Call: int64(op.Call), Output: slotOutput{Value: op.Value}, Return: int64(op.Return)})
			show(op.Off, op.Call, op.Return)
		case op.Kind == opConsume && op.Outcome == outOutOfRange:
			ops = append(ops, porcupine.Operation{ClientId: op.Client, Input: slotInput{Off: op.Off, Kind: slotRead},
				Call: int64(op.Call), Output: slotOutput{OOR: true}, Return: int64(op.Return)})
		case op.Kind == opConsume && op.Outcome == outDropped:
			// Below the lowest retained offset: the slot was filled
			// before retention dropped it.
			show(op.Off, op.Call, op.Return)
		}
	}
	// The final reads, one client per node, after the history.
	clients := 0
	for _, op := range hist {
		clients = max(clients, op.Client+1)
	}
	for i := range final.logs {
		if final.errs[i] != nil {
			continue
		}
		t := int64(end) + 1 + int64(i)
		for off, v := range final.records(i) {
			ops = append(ops, porcupine.Operation{ClientId: clients + i, Input: slotInput{Off: off, Kind: slotRead},
				Call: t, Output: slotOutput{Value: v}, Return: t})
		}
		ops = append(ops, porcupine.Operation{ClientId: clients + i, Input: slotInput{Off: final.next(i), Kind: slotRead},
			Call: t, Output: slotOutput{OOR: true}, Return: t})
	}
	// Retention dropped the offsets below every node's base before the final
	// reads, so a slot there written by an unknown produce that no read saw
	// has no write above. One of the unknown produces nobody saw wrote it:
	// an anonymous write from the first of their calls on, never returning.
	if start, ok := firstUnseenUnknown(hist, seenAt); ok {
		written := map[uint64]bool{}
		for _, op := range ops {
			if in := op.Input.(slotInput); in.Kind == slotWrite {
				written[in.Off] = true
			}
		}
		for j := range final.droppedEverywhere() {
			if !written[j] {
				ops = append(ops, porcupine.Operation{ClientId: clients + len(final.logs) + 1, Input: slotInput{Off: j, Kind: slotWrite, Value: "?"},
					Call: int64(start), Output: slotOutput{}, Return: math.MaxInt64})
			}
		}
	}
	// Density: filled(j) for every slot below the highest one shown filled.
	if len(filledBy) > 0 {
		var best shown
		for j := top; ; j-- {
			if s, ok := filledBy[j]; ok && (!best.ok || s.ret < best.ret) {
				best = s
			}
			if best.ok {
				ops = append(ops, porcupine.Operation{ClientId: clients + len(final.logs), Input: slotInput{Off: j, Kind: slotFilled},
					Call: int64(best.call), Output: slotOutput{}, Return: int64(best.ret)})
			}
			if j == 0 {
				break
			}
		}
	}
	return ops
}

// firstUnseenUnknown is the call time of the first produce whose outcome is
// unknown and whose value no read saw.
func firstUnseenUnknown(hist []chaosOp, seenAt map[string]uint64) (time.Duration, bool) {
	for _, op := range hist { // sorted by call time
		if _, seen := seenAt[op.Value]; op.Kind == opProduce && op.Outcome == outUnknown && !seen {
			return op.Call, true
		}
	}
	return 0, false
}

// checkLinearizable (4): the history and the final logs are linearizable as
// one append-only log. On a violation it names the offsets whose operations
// cannot be ordered, with their operations.
func checkLinearizable(hist []chaosOp, final finalLogs, timeout time.Duration) (porcupine.CheckResult, []string) {
	ops := linearizationOps(hist, final)
	res := porcupine.CheckOperationsTimeout(logModel, ops, timeout)
	if res == porcupine.Ok {
		return res, nil
	}
	if res == porcupine.Unknown {
		return res, []string{fmt.Sprintf("porcupine gave no verdict within %v (%d operations)", timeout, len(ops))}
	}
	var p problems
	single := logModel
	single.Partition = nil
	parts := logModel.Partition(ops)
	var bad [][]porcupine.Operation
	for _, part := range parts {
		if porcupine.CheckOperationsTimeout(single, part, timeout) == porcupine.Illegal {
			bad = append(bad, part)
		}
	}
	if len(bad) > 0 {
		p.add("%d of %d offsets are not linearizable; the first:", len(bad), len(parts))
	}
	for _, part := range bad {
		off := part[0].Input.(slotInput).Off
		slices.SortFunc(part, func(a, b porcupine.Operation) int { return int(min(max(a.Call-b.Call, -1), 1)) })
		var desc []string
		for _, op := range part {
			ret := "∞"
			if op.Return != math.MaxInt64 {
				ret = time.Duration(op.Return).String()
			}
			desc = append(desc, fmt.Sprintf("%s [%v, %s] client %d", logModel.DescribeOperation(op.Input, op.Output), time.Duration(op.Call), ret, op.ClientId))
		}
		if len(desc) > 12 {
			desc = append(desc[:12], fmt.Sprintf("… %d more", len(desc)-12))
		}
		p.add("offset %d is not linearizable: %v", off, desc)
	}
	if len(p) == 0 {
		p.add("history not linearizable (no single offset fails alone)")
	}
	return res, p
}
