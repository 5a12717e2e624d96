package launch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestReadinessChecksTheProcess: an address that answers 200 is not enough;
// the answer must come from the process started there (a program already
// on the port answers while ours fails to bind).
func TestReadinessChecksTheProcess(t *testing.T) {
	const promListen, promConfig = "127.0.0.1:9090", "/run/x/prometheus.yml"
	for name, tc := range map[string]struct {
		handler http.HandlerFunc
		probe   string
		check   checkFunc
		ours    bool
	}{
		"exporter": {
			func(w http.ResponseWriter, _ *http.Request) {
				fmt.Fprint(w, "# HELP statsd_exporter_build_info x\n# TYPE statsd_exporter_build_info gauge\nstatsd_exporter_build_info 1\n")
			}, "/metrics", isExporter, true},
		"another exporter-like program": {
			func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "go_goroutines 5\n") },
			"/metrics", isExporter, false},
		"our Prometheus": {
			func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, `{"status":"success","data":{"web.listen-address":%q,"config.file":%q}}`, promListen, promConfig)
			}, "/-/ready", isPrometheus(promListen, promConfig), true},
		"another Prometheus": {
			func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, `{"status":"success","data":{"web.listen-address":%q,"config.file":"/etc/prometheus/prometheus.yml"}}`, promListen)
			}, "/-/ready", isPrometheus(promListen, promConfig), false},
		"not a Prometheus": {
			func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "Grafana") },
			"/-/ready", isPrometheus(promListen, promConfig), false},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			p := &Process{Name: "test", done: make(chan struct{})}
			err := waitHTTP(context.Background(), p, srv.URL, tc.probe, tc.check)
			switch {
			case tc.ours && err != nil:
				t.Errorf("our process refused: %v", err)
			case !tc.ours && !errors.Is(err, ErrNotOurs):
				t.Errorf("another program accepted: %v", err)
			case !tc.ours && !strings.Contains(err.Error(), srv.URL):
				t.Errorf("error %q does not name the address", err)
			}
		})
	}
}
