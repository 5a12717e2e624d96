package statsd

import (
	"sort"
	"strings"
	"testing"
	"time"
)

// TestPoolGaugeTags: the supervisor's gauges go out as gauges with exactly
// their contract's tag keys.
func TestPoolGaugeTags(t *testing.T) {
	conn := newSinkTB(t)
	c, err := New(Config{Addr: conn.LocalAddr().String(), FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c.SetBuildInfo("v1.2.0+dirty", "go1.26.8")
	c.SetPool(4, 5, 2)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		BuildInfo:         "forkwatch_build_info:1|g|#app_name:webapp,version:v1.2.0+dirty,goversion:go1.26.8",
		Workers:           "forkwatch_workers:4|g|#app_name:webapp",
		WorkersConfigured: "forkwatch_workers_configured:5|g|#app_name:webapp",
		WorkersBusy:       "forkwatch_workers_busy:2|g|#app_name:webapp",
	}
	lines := readLines(t, conn, len(want))
	got := map[string]string{}
	for _, l := range lines {
		name, _, _ := strings.Cut(l, ":")
		got[name] = l
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if got[n] != want[n] {
			t.Errorf("%s: sent %q, want %q", n, got[n], want[n])
		}
	}
}
