//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/forkwatch/forkwatch/internal/stacktest"
)

// TestAccessLogFile: with -access-log every worker appends one Common Log
// Format line per request to the same file, whole lines only, and all of
// them are there after a graceful stop (-worker-procs set too).
func TestAccessLogFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	app := stacktest.StartApp(t, 3, "-no-metrics", "-access-log", path, "-worker-procs", "1")
	const n = 600
	for i := 0; i < n; i++ {
		get(t, app.URL+"/test/", "rest")
	}
	if code := app.StopWithin(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`^127\.0\.0\.1 - - \[[^]]+\] "GET /test/ HTTP/1\.1" 200 4$`)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != n {
		t.Errorf("%d lines for %d requests", len(lines), n)
	}
	for i, l := range lines {
		if !line.MatchString(l) {
			t.Fatalf("line %d %q is not the request's CLF line", i, l)
		}
	}
	if strings.Contains(app.Log(), "access log lines lost") {
		t.Errorf("lines lost:\n%s", app.Log())
	}
}
