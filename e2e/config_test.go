//go:build e2e

package e2e

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/forkwatch/forkwatch/internal/launch"
	"github.com/forkwatch/forkwatch/internal/stacktest"

	"go.yaml.in/yaml/v2"
)

// TestDeadExporterKeepsServing: metrics aimed at a closed UDP port (and at a
// name that does not resolve) never break serving, and the failure is logged
// once per process, not per request.
func TestDeadExporterKeepsServing(t *testing.T) {
	for name, addr := range map[string]string{
		"closed port":  closedUDPAddr(t),
		"unresolvable": "no-such-exporter.invalid:9125",
	} {
		t.Run(name, func(t *testing.T) {
			app := stacktest.StartApp(t, 2, "-statsd-addr", addr)
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
			const n = 300
			for i := 0; i < n; i++ {
				resp, err := client.Get(app.URL + "/test/")
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(body) != "rest" {
					t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
				}
			}
			// Each process (supervisor and 2 workers) may say it once.
			logged := strings.Count(app.Log(), "sending metrics failed") + strings.Count(app.Log(), "metrics address not usable")
			if logged > 3 {
				t.Errorf("metrics failure logged %d times for %d requests, want at most once per process:\n%s", logged, n, app.Log())
			}
		})
	}
}

func closedUDPAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	return addr
}

// TestBadFlags: a bad flag or environment value is one line on stderr and
// exit code 2; -h documents every flag and exits 0.
func TestBadFlags(t *testing.T) {
	bin := stacktest.Webapp(t)
	for name, tc := range map[string]struct {
		args []string
		env  string
		want string
	}{
		"unknown flag":    {args: []string{"-nope"}, want: "-nope"},
		"workers zero":    {args: []string{"-workers", "0"}, want: "-workers"},
		"workers text":    {args: []string{"-workers", "many"}, want: "workers"},
		"listen no port":  {args: []string{"-listen", "127.0.0.1"}, want: "-listen"},
		"listen bad port": {args: []string{"-listen", "127.0.0.1:99999"}, want: "-listen"},
		"statsd bad":      {args: []string{"-statsd-addr", "nowhere"}, want: "-statsd-addr"},
		"app name space":  {args: []string{"-app-name", "my app"}, want: "-app-name"},
		"negative grace":  {args: []string{"-grace", "-1s"}, want: "-grace"},
		"extra argument":  {args: []string{"serve-please"}, want: "serve-please"},
		"env workers":     {env: "FORKWATCH_WORKERS=abc", want: "FORKWATCH_WORKERS"},
		"env listen":      {env: "FORKWATCH_LISTEN=::::", want: "-listen"},
	} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			cmd.Env = os.Environ()
			if tc.env != "" {
				cmd.Env = append(cmd.Env, tc.env)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != 2 {
				t.Fatalf("exit code %d (%v), want 2; stderr %q", code, err, stderr.String())
			}
			out := strings.TrimSuffix(stderr.String(), "\n")
			if strings.Contains(out, "\n") || !strings.Contains(out, tc.want) {
				t.Errorf("stderr %q: want one line naming %q", stderr.String(), tc.want)
			}
		})
	}
	out, err := exec.Command(bin, "-h").Output()
	if err != nil {
		t.Fatalf("-h: %v", err)
	}
	for _, flag := range []string{"-listen", "-workers", "-statsd-addr", "-app-name", "FORKWATCH_LISTEN", "FORKWATCH_STATSD_ADDR"} {
		if !bytes.Contains(out, []byte(flag)) {
			t.Errorf("-h does not document %s", flag)
		}
	}
}

// TestComposeMatchesLaunch: docker-compose.yml is valid, runs the exporter
// with the flags make run uses (launch.ExporterFlags), and gives the webapp
// the settings make run gives it.
func TestComposeMatchesLaunch(t *testing.T) {
	root := stacktest.Root(t)
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatal("docker-compose is not installed: `make test` installs it (apt-get install --no-install-recommends docker-compose)")
	}
	cmd := exec.Command("docker-compose", "config", "-q")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker-compose config -q: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Ports       []string          `yaml:"ports"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	exp := compose.Services["statsd-exporter"]
	want := launch.ExporterFlags(":9125", ":9102", "/etc/statsd_exporter/mapping.yml")
	if strings.Join(exp.Command, " ") != strings.Join(want, " ") {
		t.Errorf("compose exporter command\n %q\nwant (launch.ExporterFlags)\n %q", exp.Command, want)
	}
	if got := exp.Environment["GOGC"]; got != launch.ExporterGOGC {
		t.Errorf("compose exporter GOGC %q, want launch.ExporterGOGC %q", got, launch.ExporterGOGC)
	}
	if !strings.Contains(exp.Image, ":v") {
		t.Errorf("exporter image %q is not pinned", exp.Image)
	}
	app := compose.Services["webapp"]
	if app.Environment["FORKWATCH_STATSD_ADDR"] != "statsd-exporter:9125" || app.Environment["FORKWATCH_WORKERS"] != "5" {
		t.Errorf("compose webapp environment %v", app.Environment)
	}
	for name, svc := range compose.Services {
		for _, p := range svc.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %q beyond loopback", name, p)
			}
		}
	}
	if len(exp.Ports) != 0 {
		t.Errorf("the exporter publishes %v; its ports must stay inside the compose network", exp.Ports)
	}
}
