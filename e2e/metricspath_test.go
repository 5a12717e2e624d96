//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/forkwatch/forkwatch/internal/launch"
	"github.com/forkwatch/forkwatch/internal/stacktest"
)

// TestUnknownMetricsDropped: DogStatsD lines for names forkwatch does not
// send, of every type and in every disguise (our names with a suffix, a
// dotted part or a prefix, the exporter's own names), are dropped by
// mapping.yml's catch-all rule and never show in /metrics; forkwatch's own
// names sent in the same datagram still are. statsd_exporter tries glob
// rules before regex ones, so the catch-all regex cannot shadow them.
func TestUnknownMetricsDropped(t *testing.T) {
	exporter := stacktest.Exporter(t)
	unknown := []string{
		"evil:1|c", "evil_gauge:5|g|#a:b", "evil_timer:12|ms", "evil_hist:0.5|h|#x:y", "evil_dist:3|d",
		"request_count_total:1|c", "request_count.evil:1|c", "xrequest_count:1|c", "request_countx:1|c",
		"request_latency_seconds_bucket:1|c", "forkwatch_workers.x:3|g", "forkwatch_worker_restarts_total:1|c",
		"go_goroutines:99|g", "statsd_exporter_events_total:1|c", "up:1|g", "a.b.c.d:1|c", "_:1|c",
	}
	known := []string{
		"request_count:3|c|#app_name:droptest,method:GET,endpoint:/x,http_status:200",
		"forkwatch_workers:7|g|#app_name:droptest",
	}
	for name, addr := range map[string]string{"udp": exporter.StatsdAddr, "tcp": exporter.StatsdAddr} {
		c, err := net.Dial(name, addr)
		if err != nil {
			t.Fatal(err)
		}
		// Unknown first, known last, in one write: when the known ones are
		// in, the unknown ones have been handled.
		if _, err := c.Write([]byte(strings.Join(append(append([]string{}, unknown...), known...), "\n") + "\n")); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	stacktest.Eventually(t, 10*time.Second, func() (bool, string) {
		fams := stacktest.Scrape(t, exporter.URL)
		got := stacktest.Sum(fams, "request_count", map[string]string{"app_name": "droptest"})
		gauge := stacktest.Sum(fams, "forkwatch_workers", map[string]string{"app_name": "droptest"})
		dropped := stacktest.Sum(fams, "statsd_exporter_events_actions_total", map[string]string{"action": "drop"})
		return got == 6 && gauge == 7 && dropped == float64(2*len(unknown)),
			fmt.Sprintf("request_count %v (want 6), forkwatch_workers %v (want 7), drop actions %v (want %d)", got, gauge, dropped, 2*len(unknown))
	})
	fams := stacktest.Scrape(t, exporter.URL)
	checkFamilies(t, fams)
	for _, s := range stacktest.Samples(fams, "go_goroutines") {
		if s.Value == 99 {
			t.Errorf("go_goroutines = 99: a sender overwrote the exporter's own metric")
		}
	}
	// Names the exporter has itself (go_goroutines, ...) are covered by
	// the drop count above and the value check; any other must be absent.
	body := scrapeText(t, exporter.URL)
	for _, l := range unknown {
		name := l[:strings.IndexByte(l, ':')]
		if exporterOwn(name) {
			continue
		}
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
				t.Errorf("unknown name %s shows in /metrics: %s", name, line)
			}
		}
	}
}

func scrapeText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestUnixgramTransport: with -statsd-addr unixgram:///path and an exporter
// listening on that socket alone (mode 0660, no UDP or TCP), every request is
// counted exactly, and no network port takes metrics.
func TestUnixgramTransport(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "statsd.sock")
	udp := stacktest.FreeAddr(t, true)
	exporter := stacktest.ExporterWith(t, launch.Config{StatsdAddr: udp, Unixgram: sock, UnixgramOnly: true})
	if want := "unixgram://" + sock; exporter.StatsdAddr != want {
		t.Fatalf("exporter.StatsdAddr = %q, want %q", exporter.StatsdAddr, want)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("%s: mode %v, want a socket with permissions 0660", sock, fi.Mode())
	}
	// Nothing listens for metrics on the network: the UDP and TCP ports the
	// exporter would have used are free.
	if c, err := net.ListenPacket("udp", udp); err != nil {
		t.Errorf("UDP %s taken with UnixgramOnly: %v", udp, err)
	} else {
		c.Close()
	}
	if l, err := net.Listen("tcp", udp); err != nil {
		t.Errorf("TCP %s taken with UnixgramOnly: %v", udp, err)
	} else {
		l.Close()
	}

	app := stacktest.StartApp(t, 2, "-statsd-addr", exporter.StatsdAddr)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	want := map[string]int{"/test/": 0, "unmatched": 0}
	for i := 0; i < 600; i++ {
		path, endpoint := "/test/", "/test/"
		if i%3 == 0 {
			path, endpoint = fmt.Sprintf("/nope/%d", i), "unmatched"
		}
		resp, err := client.Get(app.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		want[endpoint]++
	}
	stacktest.Eventually(t, 30*time.Second, func() (bool, string) {
		fams := stacktest.Scrape(t, exporter.URL)
		diff := ""
		for e, n := range want {
			if got := stacktest.Sum(fams, "request_count", map[string]string{"endpoint": e}); got != float64(n) {
				diff += fmt.Sprintf(" %s=%v (want %d)", e, got, n)
			}
			if got := stacktest.Sum(fams, "request_latency_seconds", map[string]string{"endpoint": e}); got != float64(n) {
				diff += fmt.Sprintf(" latency %s=%v (want %d)", e, got, n)
			}
		}
		if got := stacktest.Sum(fams, "forkwatch_workers", nil); got != 2 {
			diff += fmt.Sprintf(" forkwatch_workers=%v (want 2)", got)
		}
		return diff == "", "over unixgram:" + diff
	})
}
