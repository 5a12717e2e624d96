package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthzSubcommand(t *testing.T) {
	code := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(code)
		w.Write([]byte(`{"ready":1,"configured":2}` + "\n"))
	}))
	defer srv.Close()
	run := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		c := runHealthz(args, &out, &errOut)
		return c, out.String() + errOut.String()
	}
	if c, out := run("-admin", srv.URL); c != 0 || !strings.Contains(out, `"ready":1`) {
		t.Errorf("healthy: exit %d, %q", c, out)
	}
	code = http.StatusServiceUnavailable
	if c, out := run("-admin", srv.URL+"/"); c != 1 || !strings.Contains(out, "503") {
		t.Errorf("unhealthy: exit %d, %q", c, out)
	}
	srv.Close()
	if c, _ := run("-admin", srv.URL); c != 1 {
		t.Errorf("unreachable: exit %d, want 1", c)
	}
	if c, _ := run("extra"); c != 2 {
		t.Errorf("bad usage: exit %d, want 2", c)
	}
}
