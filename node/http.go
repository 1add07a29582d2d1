package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readiness is whether the node is ready to serve and, when not, why.
type readiness struct {
	ready  bool
	reason string
}

// readiness computes whether the node is ready: it knows a leader, can apply
// entries to its log and has applied every entry it knows committed. The
// health watcher publishes it to gRPC health and /readyz alike.
func (n *Node) computeReadiness() readiness {
	id, _, _ := n.log.Leader()
	_, applyErr := n.log.ApplyStatus()
	switch {
	case id == "":
		return readiness{reason: "no leader is known"}
	case applyErr != nil:
		return readiness{reason: fmt.Sprintf("cannot apply committed entries to the log: %v", applyErr)}
	case !n.log.CaughtUp():
		return readiness{reason: "catching up with the leader"}
	}
	return readiness{ready: true}
}

// Ready reports what the gRPC health service and /readyz say: ready to serve
// (SERVING, 200), or not and why.
func (n *Node) Ready() (ready bool, reason string) {
	r := n.ready.Load()
	if r == nil {
		return false, "starting"
	}
	select {
	case <-n.stopping:
		return false, "shutting down"
	default:
	}
	return r.ready, r.reason
}

// MetricsAddr returns the address the metrics and health endpoints listen
// on, or "" when Config.MetricsAddr is empty.
func (n *Node) MetricsAddr() string {
	if n.httpLn == nil {
		return ""
	}
	return n.httpLn.Addr().String()
}

// httpHandler serves /metrics, /healthz and /readyz.
func (n *Node) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{ErrorLog: errorLogger{n}}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-n.stopping:
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ok")
		}
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready, reason := n.Ready(); !ready {
			http.Error(w, "not ready: "+reason, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// errorLogger sends promhttp's errors to the node's logger.
type errorLogger struct{ n *Node }

func (l errorLogger) Println(v ...any) { l.n.logger.Warn("metrics: " + fmt.Sprint(v...)) }

// startHTTP listens on Config.MetricsAddr, when set, and serves the
// endpoints on a goroutine Close joins.
func (n *Node) startHTTP() error {
	if n.conf.MetricsAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", n.conf.MetricsAddr)
	if err != nil {
		return fmt.Errorf("node: metrics: listen on %s: %w", n.conf.MetricsAddr, err)
	}
	n.httpLn = ln
	n.http = &http.Server{Handler: n.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
	n.goTracked(func() {
		if err := n.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logger.Error("metrics server stopped", "err", err)
		}
	})
	return nil
}

// stopHTTP stops the endpoints, waiting briefly for scrapes in flight.
func (n *Node) stopHTTP() error {
	if n.http == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := n.http.Shutdown(ctx); err != nil {
		return n.http.Close()
	}
	return nil
}
