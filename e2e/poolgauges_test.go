//go:build e2e

package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/forkwatch/forkwatch/internal/launch"
	"github.com/forkwatch/forkwatch/internal/stacktest"
	"github.com/forkwatch/forkwatch/statsd"
)

// TestPoolGaugesHealAfterExporterRestart: the supervisor re-sends its pool
// gauges every second, so an exporter that restarted (and forgot them) has
// them again within seconds, without any worker event.
func TestPoolGaugesHealAfterExporterRestart(t *testing.T) {
	cfg := launch.Config{StatsdAddr: stacktest.FreeAddr(t, true), ExporterAddr: stacktest.FreeAddr(t, false)}
	exp := stacktest.ExporterWith(t, cfg)
	stacktest.StartApp(t, 2, "-statsd-addr", exp.StatsdAddr)

	want := map[string]float64{statsd.Workers: 2, statsd.WorkersConfigured: 2, statsd.WorkersBusy: 0, statsd.BuildInfo: 1}
	gauges := func() (bool, string) {
		fams := stacktest.Scrape(t, exp.URL)
		seen := ""
		ok := true
		for name, v := range want {
			s := stacktest.Samples(fams, name)
			seen += fmt.Sprintf("%s=%v ", name, s)
			if len(s) != 1 || s[0].Value != v || s[0].Labels["app_name"] != "webapp" {
				ok = false
			}
			if name == statsd.BuildInfo && len(s) == 1 && (s[0].Labels["version"] == "" || s[0].Labels["goversion"] == "") {
				ok = false
			}
		}
		return ok, seen
	}
	stacktest.Eventually(t, 10*time.Second, gauges)

	if err := exp.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	exp = stacktest.ExporterWith(t, cfg)
	restarted := time.Now()
	stacktest.Eventually(t, 5*time.Second, gauges)
	t.Logf("gauges back %s after the exporter restarted", time.Since(restarted).Round(10*time.Millisecond))
}
