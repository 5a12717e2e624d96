package forkwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/forkwatch/forkwatch/internal/ledger"
	"github.com/forkwatch/forkwatch/supervisor"
)

// withLedger adds the accounting audit to the supervisor's hooks: workers'
// totals messages go to the ledger, and an exited worker's totals move to
// the ledger's exited sum (after the hooks' own Exit).
func withLedger(h supervisor.Hooks, l *ledger.Ledger, log *slog.Logger) supervisor.Hooks {
	exit := h.Exit
	h.Exit = func(w supervisor.Worker, reason supervisor.Reason, wasReady bool, err error) {
		if exit != nil {
			exit(w, reason, wasReady, err)
		}
		l.Exit(w.PID)
	}
	message := h.Message
	h.Message = func(w supervisor.Worker, msg []byte) {
		ok, err := l.Message(w.PID, msg)
		if err != nil {
			log.Warn("bad totals from worker", "worker", w.ID, "pid", w.PID, "err", err)
		}
		if !ok && message != nil {
			message(w, msg)
		}
	}
	return h
}

// checkAdminAddr accepts "" (off) or a host:port whose host is a loopback
// address: the ledger is for the operator on this machine only.
func checkAdminAddr(a string) error {
	if a == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("-admin-addr %q: %v", a, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-admin-addr %q: must be a loopback address (127.0.0.1, ::1 or localhost)", a)
	}
	return nil
}

// serveAdmin serves the ledger on addr ("" = off) until the returned stop
// is called.
func serveAdmin(addr string, l *ledger.Ledger, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin endpoint: %w", err)
	}
	srv := &http.Server{Handler: l.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin endpoint failed", "err", err)
		}
	}()
	log.Info("admin endpoint", "url", "http://"+ln.Addr().String()+ledger.Path)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// totalsSender sends a worker's tally to the supervisor when it changed.
type totalsSender struct {
	tally *ledger.Tally
	child *supervisor.Child
	log   *slog.Logger
	sent  uint64 // sum of the totals last sent
}

// send is called from the worker's report loop only; nil (metrics off) does
// nothing.
func (s *totalsSender) send() {
	if s == nil {
		return
	}
	t := s.tally.Totals()
	sum := t.Sum()
	if sum == s.sent {
		return
	}
	if err := s.child.Send(ledger.Message(t)); err != nil {
		s.log.Warn("send totals to supervisor", "err", err)
		return
	}
	s.sent = sum
}
