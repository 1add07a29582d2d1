package commands

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"
	"github.com/urfave/cli/v2"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

func serversCommand() *cli.Command {
	return &cli.Command{
		Name:  "servers",
		Usage: "show the servers of the cluster; exits non-zero when it has no leader",
		Flags: append(clientFlags(),
			&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts", EnvVars: []string{"PROGLOG_JSON"}},
		),
		Action: runServers,
	}
}

func runServers(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cl, err := dial(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := callCtx(c)
	servers, err := cl.Servers(ctx)
	cancel()
	if err != nil {
		return callError(c, err)
	}
	w := c.App.Writer
	switch {
	case c.Bool("json"):
		type server struct {
			ID         string `json:"id"`
			RPCAddr    string `json:"rpc_addr"`
			IsLeader   bool   `json:"is_leader"`
			IsVoter    bool   `json:"is_voter"`
			State      string `json:"state,omitempty"`
			NextOffset uint64 `json:"next_offset,omitempty"`
		}
		out := []server{}
		for _, s := range servers {
			out = append(out, server{s.Id, s.RpcAddr, s.IsLeader, s.IsVoter, s.State, s.NextOffset})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	case isTerminal(w):
		renderServersTable(w, servers)
	default:
		for _, s := range servers {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Id, s.RpcAddr, role(s), suffrage(s), orDash(s.State), nextOffset(s))
		}
	}
	for _, s := range servers {
		if s.IsLeader {
			return nil
		}
	}
	return CodedError{ExitUnavailable, fmt.Errorf("the cluster has no leader")}
}

func renderServersTable(w io.Writer, servers []*logv1.Server) {
	header := lipgloss.NewStyle().Bold(true).Padding(0, 1)
	cell := lipgloss.NewStyle().Padding(0, 1)
	leader := cell.Foreground(lipgloss.Color("10")).Bold(true)
	t := table.New().
		Border(lipgloss.RoundedBorder()).
		Headers("ID", "RPC ADDRESS", "ROLE", "SUFFRAGE", "STATE", "NEXT OFFSET").
		StyleFunc(func(row, col int) lipgloss.Style {
			switch {
			case row == table.HeaderRow:
				return header
			case row < len(servers) && servers[row].IsLeader:
				return leader
			}
			return cell
		})
	for _, s := range servers {
		t.Row(s.Id, s.RpcAddr, role(s), suffrage(s), orDash(s.State), nextOffset(s))
	}
	fmt.Fprintln(w, t.Render())
}

func role(s *logv1.Server) string {
	if s.IsLeader {
		return "leader"
	}
	return "follower"
}

func suffrage(s *logv1.Server) string {
	if s.IsVoter {
		return "voter"
	}
	return "nonvoter"
}

func orDash(v string) string {
	if v == "" {
		return "-"
	}
	return v
}

func nextOffset(s *logv1.Server) string {
	if s.NextOffset == 0 && !s.IsLeader {
		return "-"
	}
	return strconv.FormatUint(s.NextOffset, 10)
}
