//go:build e2e

package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/forkwatch/forkwatch/internal/launch"
	"github.com/forkwatch/forkwatch/internal/stacktest"
)

// TestDefaultsLoopback: every address `make run` and the binaries use by
// default is on loopback, so nothing is reachable from another host unless
// the user says so (README "Network exposure" says how and why).
func TestDefaultsLoopback(t *testing.T) {
	root := stacktest.Root(t)
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	addrs := map[string]string{
		"launch.DefaultStatsdAddr":     launch.DefaultStatsdAddr,
		"launch.DefaultExporterAddr":   launch.DefaultExporterAddr,
		"launch.DefaultPrometheusAddr": launch.DefaultPrometheusAddr,
	}
	for _, m := range regexp.MustCompile(`(?m)^(\w+_ADDR)\s*\?=\s*(\S+)`).FindAllStringSubmatch(string(mk), -1) {
		addrs["Makefile "+m[1]] = m[2]
	}
	if len(addrs) < 7 {
		t.Errorf("found %d default addresses, want the 3 bridge defaults and 4 Makefile ones: %v", len(addrs), addrs)
	}
	out, _ := exec.Command(stacktest.Webapp(t), "-h").Output()
	for _, m := range regexp.MustCompile(`-(listen|statsd-addr) \S+\n\s+.*\(default "([^"]+)"`).FindAllStringSubmatch(string(out), -1) {
		addrs["webapp -"+m[1]] = m[2]
	}
	if _, ok := addrs["webapp -listen"]; !ok {
		t.Errorf("no -listen default in webapp -h:\n%s", out)
	}
	for name, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			t.Errorf("%s = %q: not a loopback address", name, a)
		}
	}
}
