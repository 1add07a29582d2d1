package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/discovery"
)

func serversCommand() *cli.Command {
	return &cli.Command{
		Name:  "servers",
		Usage: "show the servers of the cluster; exits non-zero when it has no leader",
		Description: `Output (-o): table (the default on a terminal), text (tab-separated columns id,
address, role, suffrage, state, next offset, lag, lowest offset, durability; the
default elsewhere; raw is the same), or json. Durability is what an acknowledged
write survives: quorum-fsync means it was fsynced to disk on a majority of voters
before the answer.`,
		Flags:  append(clientFlags(), outputFlags()...),
		Action: runServers,
	}
}

// dialServers dials the cluster and asks it for every server's own view
// (discovery.Client.Servers) within --timeout. The caller closes the client.
func dialServers(c *cli.Context) (*discovery.Client, []*logv1.Server, error) {
	cl, err := dial(c)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := callCtx(c)
	servers, err := cl.Servers(ctx)
	cancel()
	if err != nil {
		cl.Close()
		return nil, nil, callError(c, err)
	}
	return cl, servers, nil
}

func runServers(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	def := "text"
	if isTerminal(c.App.Writer) {
		def = "table"
	}
	format, err := outputFormat(c, def, "text", "json", "raw", "table")
	if err != nil {
		return err
	}
	cl, servers, err := dialServers(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	return writeServers(c.App.Writer, servers, format == "json", format == "table")
}

// writeServers prints servers as JSON, as a table (for a terminal) or as
// plain tab-separated columns. It fails unless the server the cluster names
// leader answered for itself as the leader.
func writeServers(w io.Writer, servers []*logv1.Server, asJSON, terminal bool) error {
	var leader *logv1.Server
	for _, s := range servers {
		if s.IsLeader {
			leader = s
		}
	}
	leads := leader != nil && leader.State == stateLeader
	rows := make([]serverRow, len(servers))
	for i, s := range servers {
		rows[i] = serverRow{serverPosition: serverPosition{ID: s.Id, RPCAddr: s.RpcAddr, IsLeader: s.IsLeader, State: s.State},
			IsVoter: s.IsVoter, Durability: durabilityName(s.Durability)}
		if known(s) {
			next, lowest := s.NextOffset, s.LowestOffset
			rows[i].NextOffset, rows[i].LowestOffset = &next, &lowest
			if leads {
				lag := leader.NextOffset - min(leader.NextOffset, next)
				rows[i].Lag = &lag
			}
		}
	}
	var err error
	switch {
	case asJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(rows)
	case terminal:
		_, err = fmt.Fprintln(w, serversTable(rows))
	default:
		for _, r := range rows {
			if _, err = fmt.Fprintln(w, strings.Join(r.cells(), "\t")); err != nil {
				break
			}
		}
	}
	switch {
	case err != nil:
		return err
	case leader == nil:
		return CodedError{ExitUnavailable, errors.New("the cluster has no leader")}
	case leader.State == discovery.StateUnreachable:
		return CodedError{ExitUnavailable, fmt.Errorf("the leader %s (%s) is unreachable", leader.Id, leader.RpcAddr)}
	case !leads:
		return CodedError{ExitUnavailable, fmt.Errorf("%s (%s) is named leader but reports itself %s: leadership is changing", leader.Id, leader.RpcAddr, orDash(leader.State))}
	}
	return nil
}

// stateLeader is the Raft state of a leader.
const stateLeader = "Leader"

// known reports whether s answered for itself with its next offset.
func known(s *logv1.Server) bool {
	return s.State != "" && s.State != discovery.StateUnreachable
}

// serverPosition is a server and where its log stands, as `servers` and
// `verify` report it. NextOffset, Lag (how many records it trails the
// leader by) and LowestOffset (its oldest retained record) are nil when
// unknown.
type serverPosition struct {
	ID           string  `json:"id"`
	RPCAddr      string  `json:"rpc_addr"`
	IsLeader     bool    `json:"is_leader"`
	State        string  `json:"state,omitempty"`
	NextOffset   *uint64 `json:"next_offset,omitempty"`
	Lag          *uint64 `json:"lag,omitempty"`
	LowestOffset *uint64 `json:"lowest_offset,omitempty"`
}

// serverRow is one server as `servers` prints it. Plain output keeps its
// columns in the order of cells; new ones go at the end.
type serverRow struct {
	serverPosition
	IsVoter bool `json:"is_voter"`
	// Durability is what an acknowledgement from the server guarantees
	// (durabilityName), as it reports it; empty when unknown.
	Durability string `json:"durability,omitempty"`
}

var serverColumns = []string{"ID", "RPC ADDRESS", "ROLE", "SUFFRAGE", "STATE", "NEXT OFFSET", "LAG", "LOWEST OFFSET", "DURABILITY"}

func (r serverRow) cells() []string {
	role, suffrage := "follower", "nonvoter"
	if r.IsLeader {
		role = "leader"
	}
	if r.IsVoter {
		suffrage = "voter"
	}
	offset := func(v *uint64) string {
		if v == nil {
			return "-"
		}
		return strconv.FormatUint(*v, 10)
	}
	return []string{r.ID, r.RPCAddr, role, suffrage, orDash(r.State), offset(r.NextOffset), offset(r.Lag), offset(r.LowestOffset), orDash(r.Durability)}
}

func serversTable(rows []serverRow) string {
	cells := make([][]string, len(rows))
	for i, r := range rows {
		cells[i] = r.cells()
	}
	return renderTable(serverColumns, cells, func(row int) string {
		if rows[row].IsLeader {
			return colourGood
		}
		return ""
	})
}

// durabilityName is d as commands print it ("quorum-fsync"); empty when
// unspecified.
func durabilityName(d logv1.Durability) string {
	if d == logv1.Durability_DURABILITY_UNSPECIFIED {
		return ""
	}
	name, ok := logv1.Durability_name[int32(d)]
	if !ok {
		return fmt.Sprintf("durability-%d", d)
	}
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "DURABILITY_")), "_", "-")
}

// durabilityText says in words what durability d guarantees.
func durabilityText(d logv1.Durability) string {
	switch d {
	case logv1.Durability_DURABILITY_QUORUM_FSYNC:
		return "fsynced on a majority of voters' disks before the answer"
	case logv1.Durability_DURABILITY_UNSPECIFIED:
		return "durability not reported by the server"
	}
	return durabilityName(d)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
