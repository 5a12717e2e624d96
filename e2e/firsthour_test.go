//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/forkwatch/forkwatch/internal/stacktest"
	"github.com/forkwatch/forkwatch/internal/verify"
)

// TestLoadThenVerify runs `fwctl load` then `fwctl verify` against a real
// stack, as `make load` and `make verify` do against `make run`: traffic
// before the load must not matter, the table must show zero difference, and
// traffic after the load started must make verify fail.
func TestLoadThenVerify(t *testing.T) {
	exporter := stacktest.Exporter(t)
	prom := stacktest.Prometheus(t, exporter.URL)
	app := stacktest.StartApp(t, 3, "-statsd-addr", exporter.StatsdAddr)
	fwctl := stacktest.Fwctl(t)
	record := filepath.Join(t.TempDir(), "last-load.json")

	// Earlier traffic (a user's curls): not part of the load. Sent right
	// before the load, so the load must wait for it to reach the exporter.
	getN(t, app.URL+"/test/", 5)
	getN(t, app.URL+"/test1/", 2)

	out, code := runWebapp(t, fwctl, "load", "-url", app.URL, "-exporter", exporter.URL, "-prometheus", prom.URL,
		"-n", "1500", "-c", "4", "-record", record)
	if code != 0 || !strings.Contains(out, "sent 1500 requests") {
		t.Fatalf("fwctl load: exit %d, want 0 and 1500 sent:\n%s", code, out)
	}
	rec, err := verify.Load(record)
	if err != nil {
		t.Fatal(err)
	}
	before := rec.BaselineTotals()
	if got := before[verify.Key{Method: "GET", Endpoint: "/test/", Status: 200}]; got != 5 {
		t.Errorf("baseline /test/ 200 = %v, want the 5 requests sent before the load", got)
	}
	if got := before[verify.Key{Method: "GET", Endpoint: "/test1/", Status: 500}]; got != 2 {
		t.Errorf("baseline /test1/ 500 = %v, want the 2 requests sent before the load", got)
	}
	wantSent := verify.Totals{
		{Method: "GET", Endpoint: "/test/", Status: 200}:    900,
		{Method: "GET", Endpoint: "/test1/", Status: 500}:   300,
		{Method: "GET", Endpoint: "/test", Status: 301}:     150,
		{Method: "GET", Endpoint: "unmatched", Status: 404}: 150,
	}
	if got := rec.SentTotals(); !verify.Equal(got, wantSent) {
		t.Errorf("recorded as sent %v, want %v", got, wantSent)
	}

	out, code = runWebapp(t, fwctl, "verify", "-prometheus", prom.URL, "-record", record, "-wait", "30s")
	t.Logf("fwctl verify:\n%s", out)
	if code != 0 || !strings.Contains(out, "verify: OK") {
		t.Fatalf("fwctl verify: exit %d, want 0 and OK", code)
	}
	rows := tableRows(out)
	if len(rows) != len(wantSent) {
		t.Errorf("verify table has %d series rows, want %d", len(rows), len(wantSent))
	}
	for k, want := range wantSent {
		row := rows[fmt.Sprintf("%s %d", k.Endpoint, k.Status)]
		if len(row) != 6 || row[3] != fmt.Sprint(want) || row[4] != fmt.Sprint(want) || row[5] != "0" {
			t.Errorf("verify row %s %d = %q, want Prometheus saw %v, sent %v, difference 0", k.Endpoint, k.Status, row, want, want)
		}
	}

	// The dashboard's queries run on this Prometheus and find data.
	checkDashboardQueries(t, prom.URL)

	// Someone else's requests after the load started: verify must fail and
	// show them.
	getN(t, app.URL+"/test/", 3)
	stacktest.Eventually(t, 30*time.Second, func() (bool, string) {
		got := stacktest.Query(t, prom.URL, `sum(request_count{endpoint="/test/", http_status="200"})`)
		return len(got) == 1 && got[0].Value == 908, fmt.Sprintf("Prometheus has %v, want 5+900+3", got)
	})
	out, code = runWebapp(t, fwctl, "verify", "-prometheus", prom.URL, "-record", record, "-wait", "20s")
	if code != 1 || !strings.Contains(out, "FAILED") {
		t.Fatalf("fwctl verify after 3 extra requests: exit %d, want 1 and FAILED:\n%s", code, out)
	}
	if row := tableRows(out)["/test/ 200"]; len(row) < 6 || row[5] != "+3" {
		t.Errorf("verify row /test/ 200 after 3 extra requests = %q, want difference +3\n%s", row, out)
	}
}

// getN sends n GET requests to url and fails the test on a transport error.
func getN(t *testing.T, url string, n int) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for range n {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		resp.Body.Close()
	}
}

// runWebapp runs the webapp binary with args (bounded in time) and returns its
// combined output and exit code.
func runWebapp(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	timer := time.AfterFunc(90*time.Second, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	case err != nil:
		t.Fatalf("webapp %s: %v", strings.Join(args, " "), err)
	}
	return string(out), 0
}

// tableRows reads verify's table: "endpoint status" -> the row's cells.
func tableRows(out string) map[string][]string {
	rows := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && regexp.MustCompile(`^\d{3}$`).MatchString(f[2]) {
			rows[f[1]+" "+f[2]] = f[:6]
		}
	}
	return rows
}

// checkDashboardQueries runs every query of the Grafana dashboard, with its
// variables filled in, on Prometheus: each must be valid PromQL, and each
// that is not about restarts (there were none) must return data.
func checkDashboardQueries(t *testing.T, promURL string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stacktest.Root(t), "deploy", "grafana", "dashboards", "forkwatch.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	fill := strings.NewReplacer("$__rate_interval", "1m", "$app_name", ".*", "$instance", ".*")
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			expr := fill.Replace(tg.Expr)
			n++
			if strings.Contains(expr, "forkwatch_worker_restarts_total") || strings.Contains(expr, "statsd_exporter_") {
				// Restarts, drops, conflicts: none happened, so no data.
				stacktest.Query(t, promURL, expr) // fails the test on invalid PromQL
				continue
			}
			stacktest.Eventually(t, 30*time.Second, func() (bool, string) {
				got := stacktest.Query(t, promURL, expr)
				return len(got) > 0, fmt.Sprintf("dashboard panel %q: %s returns no data", p.Title, expr)
			})
		}
	}
	if n == 0 {
		t.Fatal("dashboard has no queries")
	}
}
