package commands

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/proglogctl/proglogctl/node"
	"github.com/proglogctl/proglogctl/raftfsm"
)

// serveConfigOf parses `serve args` and returns the node.Config serveConfig
// makes of them, with what its logger writes going to logs.
func serveConfigOf(t *testing.T, logs *bytes.Buffer, args ...string) (node.Config, error) {
	t.Helper()
	cmd := serveCommand()
	var cfg node.Config
	var cerr error
	cmd.Action = func(c *cli.Context) error {
		cfg, cerr = serveConfig(c)
		return nil
	}
	app := &cli.App{Name: "proglogctl", Writer: logs, ErrWriter: logs, Commands: []*cli.Command{cmd},
		ExitErrHandler: func(*cli.Context, error) {}}
	if err := app.Run(append([]string{"proglogctl", "serve"}, args...)); err != nil {
		return node.Config{}, err
	}
	return cfg, cerr
}

// TestServeRetentionMetricsAndLogFlags: --retention-bytes, --retention-age,
// --segment-bytes, --metrics-addr and --log-format reach node.Config from
// flags, PROGLOG_* variables and the config file alike.
func TestServeRetentionMetricsAndLogFlags(t *testing.T) {
	isolateConfig(t)
	for _, args := range [][]string{{"gencert"}, {"genacl"}} {
		if _, errOut, err := run(t, args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errOut)
		}
	}
	type want struct {
		retainBytes   int64
		retainAge     time.Duration
		segment       int64
		entry, record int
		metrics       string
		json          bool
	}
	def := raftfsm.DefaultConfig()
	defaults := want{segment: def.Store.MaxStoreBytes, entry: def.MaxEntryBytes, record: def.Store.MaxRecordBytes}
	small := want{retainBytes: 1 << 20, retainAge: time.Hour, segment: 64 << 10, entry: 32 << 10, record: 32<<10 - entryOverheadBytes,
		metrics: "127.0.0.1:9102", json: true}
	file := filepath.Join(t.TempDir(), "serve.yaml")
	if err := os.WriteFile(file, []byte("retention-bytes: 1048576\nretention-age: 1h\nsegment-bytes: 65536\nmetrics-addr: 127.0.0.1:9102\nlog-format: json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want want
	}{
		{name: "defaults", want: defaults},
		{name: "flags", args: []string{"--retention-bytes", "1048576", "--retention-age", "1h", "--segment-bytes", "65536",
			"--metrics-addr", "127.0.0.1:9102", "--log-format", "json"}, want: small},
		{name: "environment", env: map[string]string{"PROGLOG_RETENTION_BYTES": "1048576", "PROGLOG_RETENTION_AGE": "1h",
			"PROGLOG_SEGMENT_BYTES": "65536", "PROGLOG_METRICS_ADDR": "127.0.0.1:9102", "PROGLOG_LOG_FORMAT": "json"}, want: small},
		{name: "config file", args: []string{"--config-file", file}, want: small},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var logs bytes.Buffer
			cfg, err := serveConfigOf(t, &logs, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			r := cfg.Replica.(raftfsm.Config)
			got := want{r.Store.RetainBytes, r.Store.RetainAge, r.Store.MaxStoreBytes, r.MaxEntryBytes, r.Store.MaxRecordBytes, cfg.MetricsAddr, false}
			cfg.Logger.Info("hello")
			got.json = strings.HasPrefix(logs.String(), `{"time":`)
			if got != tt.want {
				t.Fatalf("got %+v\nwant %+v\nlogs: %s", got, tt.want, logs.String())
			}
		})
	}

	for _, bad := range [][]string{{"--log-format", "yaml"}, {"--retention-bytes", "-1"}, {"--segment-bytes", "100"}, {"--metrics-addr", "nonsense"}} {
		if _, err := serveConfigOf(t, &bytes.Buffer{}, bad...); ExitCode(err) != ExitUsage {
			t.Errorf("serve %v: %v (exit %d), want a usage error", bad, err, ExitCode(err))
		}
	}
}

// TestDevMetrics: serve --dev serves each node's metrics, health and
// readiness over HTTP and names the URLs in its banner.
func TestDevMetrics(t *testing.T) {
	c := startDev(t, 2)
	if len(c.metrics) != 2 {
		t.Fatalf("the banner names %d metrics URLs, want 2: %q", len(c.metrics), c.metrics)
	}
	mustRun(t, "", "produce", "a", "b", "c")
	c.waitInSync(t)
	get := func(url string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, string(b)
	}
	for _, u := range c.metrics {
		if code, body := get(u); code != http.StatusOK || !strings.Contains(body, "\nproglog_log_next_offset 3\n") {
			t.Errorf("GET %s: %d, next offset not 3:\n%.2000s", u, code, body)
		}
		if code, body := get(strings.TrimSuffix(u, "/metrics") + "/readyz"); code != http.StatusOK || body != "ready\n" {
			t.Errorf("/readyz beside %s: %d %q", u, code, body)
		}
	}
}
