//go:build e2e

package e2e

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/forkwatch/forkwatch/internal/launch"
	"github.com/forkwatch/forkwatch/internal/stacktest"
)

// TestLaunchRefusesAnotherProcess: with a real exporter and Prometheus
// already on the ports, a second launch on the same addresses fails,
// naming the address, instead of taking the first ones' answers for its
// own processes' readiness.
func TestLaunchRefusesAnotherProcess(t *testing.T) {
	exp := stacktest.Exporter(t)
	prom := stacktest.Prometheus(t, exp.URL)
	root := stacktest.Root(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	cfg := launch.Config{
		Root: root, Dir: t.TempDir(),
		ExporterAddr:   strings.TrimPrefix(exp.URL, "http://"),
		PrometheusAddr: strings.TrimPrefix(prom.URL, "http://"),
		StatsdAddr:     stacktest.FreeAddr(t, true),
		Stdout:         io.Discard, Stderr: io.Discard,
	}
	start := time.Now()
	if p, err := launch.StartPrometheus(ctx, cfg); err == nil {
		_ = p.Stop(10 * time.Second)
		t.Fatal("a second Prometheus on a taken port was reported ready")
	} else if !strings.Contains(err.Error(), cfg.PrometheusAddr) {
		t.Errorf("error %q does not name %s", err, cfg.PrometheusAddr)
	}
	if p, err := launch.StartExporter(ctx, cfg); err == nil {
		_ = p.Stop(10 * time.Second)
		t.Fatal("a second exporter on a taken web port was reported ready")
	}
	t.Logf("both refused within %s", time.Since(start).Round(time.Millisecond))
}
