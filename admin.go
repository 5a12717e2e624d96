package forkwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/forkwatch/forkwatch/internal/ledger"
	"github.com/forkwatch/forkwatch/supervisor"
)

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

// Admin endpoint paths besides ledger.Path.
const (
	// HealthPath answers 200 while at least one worker is ready and the
	// supervisor's event loop is alive, else 503; the body is one line of
	// JSON, {"ready":N,"configured":M}.
	HealthPath = "/healthz"
	// PprofPath serves the supervisor's own profiles (net/http/pprof); the
	// workers are other processes.
	PprofPath = "/debug/pprof/"
	// healthStale is how old the event loop's last heartbeat (about every
	// 25ms) may be before /healthz calls the supervisor stuck.
	healthStale = 3 * time.Second
)

// adminHandler serves the admin endpoint: the ledger, /healthz and pprof,
// to requests whose Host is a loopback name only (see loopbackHost).
func adminHandler(l *ledger.Ledger, p *pool, now func() time.Time) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+ledger.Path, l.Handler())
	mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, _ *http.Request) {
		s := p.state()
		code := http.StatusOK
		if s.Ready < 1 || s.Beat.IsZero() || now().Sub(s.Beat) > healthStale {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		fmt.Fprintf(w, "{\"ready\":%d,\"configured\":%d}\n", s.Ready, s.Configured)
	})
	// On this mux, not http.DefaultServeMux (which importing net/http/pprof
	// also fills, but nothing here serves).
	mux.HandleFunc(PprofPath, pprof.Index)
	mux.HandleFunc(PprofPath+"cmdline", pprof.Cmdline)
	mux.HandleFunc(PprofPath+"profile", pprof.Profile)
	mux.HandleFunc(PprofPath+"symbol", pprof.Symbol)
	mux.HandleFunc(PprofPath+"trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			http.Error(w, "forbidden: the admin endpoint answers only requests for a loopback host", http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header names this machine's loopback
// (localhost, 127.0.0.0/8, ::1, with or without a port). The endpoint
// listens on loopback only, but a web page could still reach it through a
// DNS name rebound to 127.0.0.1 (DNS rebinding); such a request carries the
// attacker's name in Host and is refused.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// adminServer is the running admin endpoint.
type adminServer struct {
	srv *http.Server
	ln  *net.TCPListener
}

// serveAdmin serves h on addr ("" = off) until stop is called. With
// inherited (the socket an upgrading supervisor passed), it serves that
// instead of binding addr, which the old supervisor still holds.
func serveAdmin(addr string, inherited *os.File, h http.Handler, log *slog.Logger) (*adminServer, error) {
	if addr == "" {
		if inherited != nil {
			inherited.Close()
		}
		return &adminServer{}, nil
	}
	var ln net.Listener
	var err error
	if inherited != nil {
		ln, err = net.FileListener(inherited)
		inherited.Close() // FileListener dup'ed it
	} else {
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("admin endpoint: %w", err)
	}
	tcp, ok := ln.(*net.TCPListener)
	if !ok {
		ln.Close()
		return nil, fmt.Errorf("admin endpoint: inherited socket is not TCP")
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin endpoint failed", "err", err)
		}
	}()
	base := "http://" + ln.Addr().String()
	log.Info("admin endpoint", "audit", base+ledger.Path, "health", base+HealthPath, "pprof", base+PprofPath)
	return &adminServer{srv: srv, ln: tcp}, nil
}

// stop shuts the endpoint down; the socket stays open in a new supervisor
// that took it over.
func (a *adminServer) stop() {
	if a.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = a.srv.Shutdown(ctx)
}

// files is PoolHooks.UpgradeFiles: the admin socket, if any, for the new
// supervisor.
func (a *adminServer) files() ([]*os.File, error) {
	if a.ln == nil {
		return nil, nil
	}
	f, err := supervisor.ListenerFile(a.ln)
	if err != nil {
		return nil, fmt.Errorf("admin endpoint: %w", err)
	}
	return []*os.File{f}, nil
}
