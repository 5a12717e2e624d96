//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/forkwatch/forkwatch/internal/stacktest"
)

// browserQuery is what a user types into the expression browser first.
const browserQuery = `sum by (http_status) (request_count)`

// screenshotPath is the picture README.md shows. It is rewritten only with
// -update (go test -tags e2e ./e2e -run TestExpressionBrowser -update), so a
// test run leaves the tree as it was.
const screenshotPath = "docs/expression-browser.png"

var update = flag.Bool("update", false, "rewrite "+screenshotPath+" from the browser test")

// TestExpressionBrowser opens Prometheus's expression browser in headless
// Chromium, the way a user does after `make run`, runs browserQuery and
// requires the table on the page to show, per status, what the test sent.
func TestExpressionBrowser(t *testing.T) {
	chromium := findChromium(t)
	exporter := stacktest.Exporter(t)
	prom := stacktest.Prometheus(t, exporter.URL)
	app := stacktest.StartApp(t, 2, "-statsd-addr", exporter.StatsdAddr)

	// A count per status that no other status has, so a mix-up shows.
	sent := map[string]int{"200": 7, "500": 3, "404": 2, "301": 1}
	getN(t, app.URL+"/test/", sent["200"])
	getN(t, app.URL+"/test1/", sent["500"])
	getN(t, app.URL+"/no/such/path", sent["404"])
	getN(t, app.URL+"/test", sent["301"])
	stacktest.Eventually(t, 30*time.Second, func() (bool, string) {
		got := stacktest.Query(t, prom.URL, browserQuery)
		total := 0.0
		for _, s := range got {
			total += s.Value
		}
		return len(got) == len(sent) && total == 13, fmt.Sprintf("Prometheus has %v", got)
	})

	t.Logf("Prometheus has the counts")
	ctx := newBrowser(t, chromium)
	t.Logf("browser started")
	run := func(what string, a chromedp.Action[chromedp.Void]) {
		t.Helper()
		defer func(start time.Time) { t.Logf("browser: %s took %s", what, time.Since(start).Round(time.Millisecond)) }(time.Now())
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(actx, a); err != nil {
			t.Fatalf("browser: %s: %v", what, err)
		}
	}
	run("open the expression browser", chromedp.Navigate(prom.URL+"/classic/graph"))
	run("wait for the expression field", chromedp.WaitVisible(chromedp.CSS("#expr0")))
	run("type the query", chromedp.SendKeys(chromedp.CSS("#expr0"), browserQuery))
	run("close the autocompletion", chromedp.SendKeys(chromedp.CSS("#expr0"), kb.Escape))
	run("execute", chromedp.Click(chromedp.CSS("#graph_wrapper0 .execute_btn")))

	// The console tab's table fills in when the answer arrives.
	rowsJS := `Array.from(document.querySelectorAll("#console0 .console_table tbody tr")).map(tr => Array.from(tr.cells).map(td => td.innerText))`
	var rows [][]string
	stacktest.Eventually(t, 30*time.Second, func() (bool, string) {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var err error
		rows, err = chromedp.Run(actx, chromedp.Evaluate[[][]string](rowsJS))
		if err != nil {
			return false, fmt.Sprintf("read the table: %v", err)
		}
		return len(rows) == len(sent), fmt.Sprintf("table rows %q, want %d", rows, len(sent))
	})
	status := regexp.MustCompile(`^\{http_status="(\d{3})"\}$`)
	seen := map[string]bool{}
	for _, r := range rows {
		if len(r) != 2 {
			t.Errorf("table row %q: want 2 cells", r)
			continue
		}
		m := status.FindStringSubmatch(r[0])
		if m == nil {
			t.Errorf("table row %q: first cell is not {http_status=\"...\"}", r)
			continue
		}
		seen[m[1]] = true
		if want := strconv.Itoa(sent[m[1]]); r[1] != want {
			t.Errorf("table shows %s = %s, the test sent %s", r[0], r[1], want)
		}
	}
	for code := range sent {
		if !seen[code] {
			t.Errorf("table has no row for http_status %s: %q", code, rows)
		}
	}

	// A cookbook link (docs/cookbook.md), pointed at this Prometheus, opens
	// the expression browser with the query filled in and its answer shown.
	readme, err := os.ReadFile(filepath.Join(stacktest.Root(t), "docs", "cookbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	seedLink := regexp.MustCompile(`http://127\.0\.0\.1:9090(/graph\?g0\.expr=request_count%7Bhttp_status%3D%22500%22%7D&g0\.tab=1)`).FindSubmatch(readme)
	if seedLink == nil {
		t.Fatal(`docs/cookbook.md has no link for request_count{http_status="500"}`)
	}
	run("open "+string(seedLink[1]), chromedp.Navigate(prom.URL+string(seedLink[1])))
	stacktest.Eventually(t, 30*time.Second, func() (bool, string) {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		expr, err := chromedp.Run(actx, chromedp.Value(chromedp.CSS("#expr0")))
		if err != nil {
			return false, fmt.Sprintf("read the expression: %v", err)
		}
		rows, err := chromedp.Run(actx, chromedp.Evaluate[[][]string](rowsJS))
		if err != nil {
			return false, fmt.Sprintf("read the table: %v", err)
		}
		ok := expr == `request_count{http_status="500"}` && len(rows) == 1 && len(rows[0]) == 2 &&
			strings.Contains(rows[0][0], `http_status="500"`) && rows[0][1] == strconv.Itoa(sent["500"])
		return ok, fmt.Sprintf("expression %q, table %q; want one row with %d", expr, rows, sent["500"])
	})

	// Back to the first query for the screenshot.
	run("open the expression browser again", chromedp.Navigate(prom.URL+"/classic/graph?g0.expr="+url.QueryEscape(browserQuery)+"&g0.tab=1"))
	stacktest.Eventually(t, 30*time.Second, func() (bool, string) {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		got, err := chromedp.Run(actx, chromedp.Evaluate[[][]string](rowsJS))
		return err == nil && len(got) == len(sent), fmt.Sprintf("table %q (%v)", got, err)
	})

	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if len(png) < 1000 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot: %d bytes, not a PNG", len(png))
	}
	if !*update {
		t.Logf("table %q; screenshot taken (%d bytes), %s left as it is (-update rewrites it)", rows, len(png), screenshotPath)
		return
	}
	out := filepath.Join(stacktest.Root(t), screenshotPath)
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("table %q; screenshot %s rewritten (%d bytes)", rows, screenshotPath, len(png))
}

// findChromium returns Debian's chromium; without it the test fails (`make
// test` installs it).
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium on PATH: install it with `sudo apt-get install -y --no-install-recommends chromium` (make test does)")
	return ""
}

// newBrowser starts headless Chromium with a fresh profile; it is stopped
// when the test ends.
func newBrowser(t *testing.T, chromium string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // root in CI
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1100, 700),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// Start the browser with no deadline: the first Run binds its life to
	// the context given.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium %s: %v", chromium, err)
	}
	return ctx
}
