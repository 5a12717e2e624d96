package forkwatch

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/forkwatch/forkwatch/internal/ledger"
	"github.com/forkwatch/forkwatch/supervisor"
)

// TestHealthz: 200 only while a worker is ready and the event loop beats;
// the body counts ready and configured workers.
func TestHealthz(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	p := newPool(3)
	h, ph := p.hooks(supervisor.Hooks{}, supervisor.PoolHooks{})
	srv := adminHandler(ledger.NewLedger("webapp", now), p, clock)
	get := func() (int, string) {
		t.Helper()
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1:5050/healthz", nil))
		return rec.Code, rec.Body.String()
	}
	steps := []struct {
		name string
		do   func()
		code int
		body string
	}{
		{"before the loop runs", func() {}, 503, `{"ready":0,"configured":3}`},
		{"loop alive, no worker ready", func() { ph.Alive(now) }, 503, `{"ready":0,"configured":3}`},
		{"one ready", func() { h.Ready(supervisor.Worker{ID: 1, PID: 101}) }, 200, `{"ready":1,"configured":3}`},
		{"two ready", func() { h.Ready(supervisor.Worker{ID: 2, PID: 102}) }, 200, `{"ready":2,"configured":3}`},
		{"scaled up", func() { ph.Scaled(4) }, 200, `{"ready":2,"configured":4}`},
		{"loop silent 2s", func() { now = now.Add(2 * time.Second) }, 200, `{"ready":2,"configured":4}`},
		{"loop silent 4s", func() { now = now.Add(2 * time.Second) }, 503, `{"ready":2,"configured":4}`},
		{"loop back", func() { ph.Alive(now) }, 200, `{"ready":2,"configured":4}`},
		{"both exit", func() {
			h.Exit(supervisor.Worker{ID: 1, PID: 101}, supervisor.ReasonCrash, true, nil)
			h.Exit(supervisor.Worker{ID: 2, PID: 102}, supervisor.ReasonCrash, true, nil)
		}, 503, `{"ready":0,"configured":4}`},
	}
	for _, st := range steps {
		st.do()
		code, body := get()
		if code != st.code || body != st.body+"\n" {
			t.Errorf("%s: %d %q, want %d %q", st.name, code, body, st.code, st.body+"\n")
		}
	}
}

// TestAdminHosts: the endpoint answers loopback Host headers only, so a
// page that rebinds its own DNS name to 127.0.0.1 cannot read it.
func TestAdminHosts(t *testing.T) {
	now := time.Now()
	p := newPool(1)
	h, ph := p.hooks(supervisor.Hooks{}, supervisor.PoolHooks{})
	h.Ready(supervisor.Worker{ID: 1, PID: 1})
	ph.Alive(now)
	srv := adminHandler(ledger.NewLedger("webapp", now), p, func() time.Time { return now })
	for host, want := range map[string]int{
		"127.0.0.1:5050":        200,
		"127.0.0.1":             200,
		"127.9.9.9:5050":        200,
		"localhost:5050":        200,
		"LOCALHOST":             200,
		"[::1]:5050":            200,
		"evil.example:5050":     403,
		"evil.example":          403,
		"192.168.1.5:5050":      403,
		"localhost.evil.com":    403,
		"127.0.0.1.nip.io:5050": 403,
		"":                      403,
	} {
		req := httptest.NewRequest("GET", "/healthz", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %q: %d, want %d", host, rec.Code, want)
		}
	}
}

// TestAdminRoutes: the ledger, pprof (on the admin mux) and an unknown path.
func TestAdminRoutes(t *testing.T) {
	now := time.Now()
	srv := httptest.NewServer(adminHandler(ledger.NewLedger("webapp", now), newPool(1), time.Now))
	defer srv.Close()
	for path, tc := range map[string]struct {
		code int
		body string
	}{
		ledger.Path:                     {200, `"app_name": "webapp"`},
		PprofPath:                       {200, "goroutine"},
		PprofPath + "goroutine?debug=1": {200, "goroutine profile"},
		PprofPath + "cmdline":           {200, ""},
		"/nope":                         {404, ""},
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.body) {
			t.Errorf("GET %s: %d %.80q, want %d with %q", path, resp.StatusCode, b, tc.code, tc.body)
		}
	}
	if resp, err := http.Post(srv.URL+HealthPath, "text/plain", nil); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d, want 405", HealthPath, resp.StatusCode)
		}
	}
}
