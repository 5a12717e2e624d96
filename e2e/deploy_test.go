//go:build e2e

package e2e

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"

	"github.com/forkwatch/forkwatch/internal/launch"
	"github.com/forkwatch/forkwatch/internal/stacktest"
)

func root(t *testing.T) string { t.Helper(); return stacktest.Root(t) }

func read(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tool finds a binary that `make test` installs, or fails with the command
// that installs it.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not on PATH: install it with `sudo apt-get install -y --no-install-recommends %s` (make test does)", name, pkg)
	}
	return p
}

func runTool(t *testing.T, dir, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPromtool validates prometheus.yml and rules.yml the way Prometheus
// loads them, and runs the rules' unit tests (rules_test.yml).
func TestPromtool(t *testing.T) {
	promtool := tool(t, "promtool", "prometheus")
	r := root(t)

	// The config directory `make run` uses, written by the launch.
	dir := t.TempDir()
	conf, err := launch.WritePrometheusConfig(r, dir, "127.0.0.1:9102")
	if err != nil {
		t.Fatal(err)
	}
	// The two compose layouts: the repo's prometheus.yml and rules.yml with
	// a mounted targets directory.
	layouts := map[string]string{"make run": conf}
	for name, targets := range map[string]string{"compose": "deploy/compose/targets", "compose two-hosts": "deploy/compose/two-hosts/targets"} {
		d := t.TempDir()
		for _, f := range []string{"prometheus.yml", "rules.yml"} {
			copyFile(t, filepath.Join(r, f), filepath.Join(d, f))
		}
		ents, err := os.ReadDir(filepath.Join(r, targets))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			copyFile(t, filepath.Join(r, targets, e.Name()), filepath.Join(d, "targets", e.Name()))
		}
		layouts[name] = filepath.Join(d, "prometheus.yml")
	}
	for name, c := range layouts {
		out := runTool(t, r, promtool, "check", "config", c)
		if !strings.Contains(out, "1 rule files found") {
			t.Errorf("%s: promtool check config does not load rules.yml:\n%s", name, out)
		}
	}
	out := runTool(t, r, promtool, "check", "rules", "rules.yml")
	t.Logf("promtool check rules rules.yml: %s", strings.TrimSpace(out))
	out = runTool(t, r, promtool, "test", "rules", "rules_test.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules rules_test.yml:\n%s", out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// knownMetrics are the metric names Prometheus can have: what mapping.yml
// lets through the exporter (histograms with their series), the recording
// rules' names, and up.
func knownMetrics(t *testing.T) map[string]bool {
	t.Helper()
	var mapping struct {
		Mappings []struct {
			Name         string `yaml:"name"`
			ObserverType string `yaml:"observer_type"`
			Action       string `yaml:"action"`
		} `yaml:"mappings"`
	}
	if err := yaml.Unmarshal(read(t, "mapping.yml"), &mapping); err != nil {
		t.Fatalf("mapping.yml: %v", err)
	}
	known := map[string]bool{"up": true}
	// The exporter's own counters that rules.yml alerts on.
	for _, n := range []string{"statsd_exporter_udp_packet_drops_total", "statsd_exporter_events_conflict_total",
		"statsd_exporter_sample_errors_total"} {
		known[n] = true
	}
	for _, m := range mapping.Mappings {
		if m.Action == "drop" {
			continue
		}
		known[m.Name] = true
		if m.ObserverType == "histogram" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				known[m.Name+s] = true
			}
		}
	}
	for _, r := range rules(t) {
		if r.Record != "" {
			known[r.Record] = true
		}
	}
	return known
}

type rule struct {
	Record string `yaml:"record"`
	Alert  string `yaml:"alert"`
	Expr   string `yaml:"expr"`
}

func rules(t *testing.T) []rule {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(read(t, "rules.yml"), &f); err != nil {
		t.Fatalf("rules.yml: %v", err)
	}
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promVar      = regexp.MustCompile(`\$\w+`)
	promToken    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*|[0-9][0-9a-zA-Z_.+-]*|\S`)
	promIdent    = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	promKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
		"group_right": true, "bool": true, "and": true, "or": true, "unless": true, "offset": true, "inf": true, "nan": true}
)

// metricNames returns the metric names a PromQL expression selects: the
// identifiers that are not functions, keywords, label names or values.
// Grafana variables ($name) are dropped.
func metricNames(expr string) []string {
	e := promString.ReplaceAllString(expr, " ")
	e = promVar.ReplaceAllString(e, " ")
	e = promMatchers.ReplaceAllString(e, " ")
	e = promRange.ReplaceAllString(e, " ")
	e = promGrouping.ReplaceAllString(e, " ")
	toks := promToken.FindAllString(e, -1)
	seen := map[string]bool{}
	var out []string
	for i, tok := range toks {
		if !promIdent.MatchString(tok) || promKeywords[strings.ToLower(tok)] {
			continue
		}
		if i+1 < len(toks) && toks[i+1] == "(" {
			continue // a function or aggregation
		}
		if !seen[tok] {
			seen[tok] = true
			out = append(out, tok)
		}
	}
	sort.Strings(out)
	return out
}

func TestMetricNames(t *testing.T) {
	tests := map[string]struct {
		expr string
		want []string
	}{
		"plain":         {`request_count`, []string{"request_count"}},
		"matcher":       {`request_count{http_status="500", endpoint=~"/a.*"}`, []string{"request_count"}},
		"rate by":       {`sum by (http_status) (rate(request_count[1m]))`, []string{"request_count"}},
		"quantile":      {`histogram_quantile(0.99, sum by (le, endpoint) (rate(request_latency_seconds_bucket[5m])))`, []string{"request_latency_seconds_bucket"}},
		"binary":        {`forkwatch_workers < on (app_name) group_left app_name:forkwatch_workers:configured`, []string{"app_name:forkwatch_workers:configured", "forkwatch_workers"}},
		"grafana vars":  {`topk(5, sum by (endpoint) (rate(request_count{app_name=~"$app_name"}[$__rate_interval])))`, []string{"request_count"}},
		"numbers":       {`x > 1e-3 and y offset 5m`, []string{"x", "y"}},
		"label_replace": {`label_replace(vector(5), "app_name", "webapp", "", "")`, nil},
		"misspelled":    {`sum(request_cuont)`, []string{"request_cuont"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
				t.Errorf("metricNames(%q) = %q, want %q", tc.expr, got, tc.want)
			}
		})
	}
}

// checkMetrics fails for each name in expr that Prometheus cannot have.
func checkMetrics(t *testing.T, where, expr string, known map[string]bool) {
	t.Helper()
	names := metricNames(expr)
	if len(names) == 0 && !strings.Contains(expr, "vector(") {
		t.Errorf("%s: %q names no metric", where, expr)
	}
	for _, n := range names {
		if !known[n] {
			t.Errorf("%s: %q uses metric %q, which neither mapping.yml nor rules.yml defines", where, expr, n)
		}
	}
}

func TestRulesUseExistingMetrics(t *testing.T) {
	known := knownMetrics(t)
	for _, r := range rules(t) {
		checkMetrics(t, "rules.yml "+r.Record+r.Alert, r.Expr, known)
	}
}

type dashboard struct {
	UID    string `json:"uid"`
	Panels []struct {
		ID         int    `json:"id"`
		Title      string `json:"title"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr       string `json:"expr"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
			Type       string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
}

// TestGrafanaDashboard parses the dashboard and its provisioning: every
// query names only metrics that exist, and every panel uses the provisioned
// datasource.
func TestGrafanaDashboard(t *testing.T) {
	var d dashboard
	if err := json.Unmarshal(read(t, "deploy/grafana/dashboards/forkwatch.json"), &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(read(t, "deploy/grafana/provisioning/datasources/prometheus.yml"), &ds); err != nil {
		t.Fatalf("datasource provisioning: %v", err)
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Fatalf("datasource provisioning: want one prometheus datasource at http://prometheus:9090 (the compose service), got %+v", ds.Datasources)
	}
	// Panels name no datasource uid: they follow the dashboard's
	// datasource variable, so the dashboard imports into any Grafana.
	const uid = "${datasource}"
	hasVar := map[string]string{}
	for _, v := range d.Templating.List {
		hasVar[v.Name] = v.Type
	}
	if hasVar["datasource"] != "datasource" || hasVar["instance"] != "query" {
		t.Errorf("dashboard variables %v: want a datasource variable and an instance variable", hasVar)
	}
	known := knownMetrics(t)
	ids := map[int]bool{}
	queries := 0
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Datasource.UID != uid {
			t.Errorf("panel %q: datasource uid %q, want the provisioned %q", p.Title, p.Datasource.UID, uid)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			checkMetrics(t, "dashboard panel "+p.Title, tg.Expr, known)
			if tg.Datasource.UID != uid {
				t.Errorf("panel %q query: datasource uid %q, want %q", p.Title, tg.Datasource.UID, uid)
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "datasource" {
			continue
		}
		m := regexp.MustCompile(`label_values\((\w+)\W`).FindStringSubmatch(v.Definition)
		if m == nil || !known[m[1]] {
			t.Errorf("variable %s: %q must be label_values of a known metric", v.Name, v.Definition)
		}
	}
	if queries < 8 {
		t.Errorf("dashboard has %d queries, want the cookbook's and the pool's (8 or more)", queries)
	}
	t.Logf("dashboard %s: %d panels, %d queries, all on known metrics", d.UID, len(d.Panels), queries)
}

// compose runs docker-compose (no engine needed for config) on the repo's
// docker-compose.yml with the given profile.
func compose(t *testing.T, profile string, args ...string) string {
	t.Helper()
	bin := tool(t, "docker-compose", "docker-compose")
	all := []string{"-f", "docker-compose.yml"}
	if profile != "" {
		all = append(all, "--profile", profile)
	}
	return runTool(t, root(t), bin, append(all, args...)...)
}

type composeFile struct {
	Services map[string]struct {
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		Image       string            `yaml:"image"`
		Profiles    []string          `yaml:"profiles"`
		Environment map[string]string `yaml:"environment"`
		Command     []string          `yaml:"command"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
	} `yaml:"services"`
}

// TestCompose validates docker-compose.yml with and without its profiles,
// and checks the two-host profile: each app host sends to its own exporter,
// and the fleet Prometheus scrapes every exporter.
func TestCompose(t *testing.T) {
	for _, profile := range []string{"", "grafana", "two-hosts"} {
		compose(t, profile, "config", "-q")
	}
	var c composeFile
	if err := yaml.Unmarshal([]byte(compose(t, "two-hosts", "config")), &c); err != nil {
		t.Fatalf("docker-compose config output: %v", err)
	}
	// Every service: a pinned image (or the repo's build) and a healthcheck.
	for name, s := range c.Services {
		if s.Image != "" && (!strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest")) {
			t.Errorf("service %s: image %q is not pinned to a version", name, s.Image)
		}
		if len(s.Healthcheck.Test) == 0 {
			t.Errorf("service %s has no healthcheck", name)
		}
	}
	if _, err := os.Stat(filepath.Join(root(t), ".dockerignore")); err != nil {
		t.Errorf("no .dockerignore: the image build would send bin/, .run/ and .git: %v", err)
	}
	exporters := map[string]string{} // exporter service -> the app sending to it
	for name, s := range c.Services {
		addr, ok := s.Environment["FORKWATCH_STATSD_ADDR"]
		if !ok {
			continue
		}
		exp, _, _ := strings.Cut(addr, ":")
		if other, dup := exporters[exp]; dup {
			t.Errorf("apps %s and %s share the exporter %s: each host needs its own", other, name, exp)
		}
		exporters[exp] = name
		if _, ok := c.Services[exp]; !ok {
			t.Errorf("%s sends to %s, which is no service", name, addr)
		}
	}
	if len(exporters) != 2 {
		t.Errorf("two-hosts profile: %d app hosts with their own exporter, want 2: %v", len(exporters), exporters)
	}
	var targets []struct {
		Targets []string `yaml:"targets"`
	}
	if err := yaml.Unmarshal(read(t, "deploy/compose/two-hosts/targets/hosts.yml"), &targets); err != nil {
		t.Fatalf("two-hosts targets: %v", err)
	}
	var got []string
	for _, tg := range targets {
		got = append(got, tg.Targets...)
	}
	var want []string
	for exp := range exporters {
		want = append(want, exp+":9102")
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("fleet Prometheus targets %q, want every host's exporter %q", got, want)
	}
	fleet, ok := c.Services["prometheus-fleet"]
	if !ok || !slices.Contains(fleet.Profiles, "two-hosts") {
		t.Fatalf("no prometheus-fleet service in profile two-hosts")
	}
	if !hasMount(fleet.Volumes, "deploy/compose/two-hosts/targets", "/etc/prometheus/targets") || !hasMount(fleet.Volumes, "rules.yml", "/etc/prometheus/rules.yml") {
		t.Errorf("prometheus-fleet volumes %q: want the two-hosts targets and rules.yml", fleet.Volumes)
	}
	if p, ok := c.Services["prometheus"]; !ok || !hasMount(p.Volumes, "rules.yml", "/etc/prometheus/rules.yml") {
		t.Errorf("prometheus service does not mount rules.yml")
	}

	g, ok := c.Services["grafana"]
	switch {
	case !ok || !slices.Contains(g.Profiles, "grafana"):
		t.Errorf("no grafana service in profile grafana")
	case !regexp.MustCompile(`^grafana/grafana:\d+\.\d+\.\d+$`).MatchString(g.Image):
		t.Errorf("grafana image %q: pin a release (grafana/grafana:X.Y.Z)", g.Image)
	case !hasMount(g.Volumes, "deploy/grafana/provisioning", "/etc/grafana/provisioning") || !hasMount(g.Volumes, "deploy/grafana/dashboards", "/var/lib/grafana/dashboards"):
		t.Errorf("grafana volumes %q: want the provisioning and the dashboards", g.Volumes)
	}
}

func hasMount(volumes []string, hostSuffix, target string) bool {
	for _, v := range volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && strings.HasSuffix(parts[0], hostSuffix) && parts[1] == target {
			return true
		}
	}
	return false
}

type k8sContainer struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
	ReadinessProbe k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  k8sProbe `yaml:"livenessProbe"`
	RestartPolicy  string   `yaml:"restartPolicy"`
	Lifecycle      struct {
		PreStop struct {
			Sleep struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
}

type k8sProbe struct {
	Exec struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
}

type k8sDoc struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Template struct {
			Metadata struct {
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec struct {
				Containers     []k8sContainer `yaml:"containers"`
				InitContainers []k8sContainer `yaml:"initContainers"`
				Volumes        []struct {
					Name      string `yaml:"name"`
					ConfigMap struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// TestKubernetesExample parses deploy/k8s: the exporter is a sidecar with
// the bridge's flags, reached over the pod's loopback, scraped by the
// annotated port, with the repo's mapping.
func TestKubernetesExample(t *testing.T) {
	dec := yaml.NewDecoder(strings.NewReader(string(read(t, "deploy/k8s/forkwatch.yaml"))))
	docs := map[string]k8sDoc{}
	for {
		var d k8sDoc
		if err := dec.Decode(&d); err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("forkwatch.yaml: %v", err)
		}
		if d.APIVersion == "" || d.Kind == "" || d.Metadata.Name == "" {
			t.Errorf("forkwatch.yaml: a document without apiVersion, kind or name: %+v", d)
		}
		docs[d.Kind] = d
	}
	cm, dep := docs["ConfigMap"], docs["Deployment"]
	if dep.Kind == "" || cm.Kind == "" || docs["Service"].Kind == "" {
		t.Fatalf("forkwatch.yaml: want a ConfigMap, a Deployment and a Service, got %d documents", len(docs))
	}
	if cm.Data["mapping.yml"] != string(read(t, "mapping.yml")) {
		t.Errorf("ConfigMap %s: mapping.yml differs from the repo's mapping.yml", cm.Metadata.Name)
	}
	pod := dep.Spec.Template
	cs := map[string]k8sContainer{}
	for _, c := range pod.Spec.Containers {
		cs[c.Name] = c
	}
	for _, c := range pod.Spec.InitContainers {
		cs[c.Name] = c
	}
	app, exp := cs["webapp"], cs["statsd-exporter"]
	if app.Name == "" || exp.Name == "" {
		t.Fatalf("Deployment: want containers webapp and statsd-exporter, got %v", pod.Spec.Containers)
	}
	// The exporter must outlive the app's drain: a native sidecar (an init
	// container that keeps running) is stopped after the app, and its
	// preStop waits a scrape interval for the final counts.
	if exp.RestartPolicy != "Always" || slices.ContainsFunc(pod.Spec.Containers, func(c k8sContainer) bool { return c.Name == exp.Name }) {
		t.Errorf("the exporter must be a native sidecar (initContainers, restartPolicy: Always), not a plain container")
	}
	if exp.Lifecycle.PreStop.Sleep.Seconds < 2 {
		t.Errorf("exporter preStop sleep %ds: want at least one scrape interval (2s)", exp.Lifecycle.PreStop.Sleep.Seconds)
	}
	const statsdAddr, mappingPath = "127.0.0.1:9125", "/etc/statsd_exporter/mapping.yml"
	if got := env(app, "FORKWATCH_STATSD_ADDR"); got != statsdAddr {
		t.Errorf("webapp FORKWATCH_STATSD_ADDR = %q, want the sidecar at %s", got, statsdAddr)
	}
	if want := launch.ExporterFlags(statsdAddr, ":9102", mappingPath); !slices.Equal(exp.Args, want) {
		t.Errorf("exporter args\n %q\nwant launch.ExporterFlags\n %q", exp.Args, want)
	}
	if got := env(exp, "GOGC"); got != launch.ExporterGOGC {
		t.Errorf("exporter GOGC = %q, want launch.ExporterGOGC %q", got, launch.ExporterGOGC)
	}
	var c composeFile
	if err := yaml.Unmarshal(read(t, "docker-compose.yml"), &c); err != nil {
		t.Fatal(err)
	}
	if want := c.Services["statsd-exporter"].Image; exp.Image != want {
		t.Errorf("exporter image %q, want docker-compose's %q", exp.Image, want)
	}
	if len(exp.VolumeMounts) != 1 || exp.VolumeMounts[0].MountPath != filepath.Dir(mappingPath) {
		t.Errorf("exporter volume mounts %+v, want the mapping at %s", exp.VolumeMounts, filepath.Dir(mappingPath))
	}
	if len(pod.Spec.Volumes) != 1 || pod.Spec.Volumes[0].ConfigMap.Name != cm.Metadata.Name {
		t.Errorf("pod volumes %+v, want the ConfigMap %s", pod.Spec.Volumes, cm.Metadata.Name)
	}
	// Both probes ask the admin endpoint's /healthz, from inside the
	// container (it listens on the pod's loopback).
	admin := env(app, "FORKWATCH_ADMIN_ADDR")
	wantProbe := []string{"/webapp", "healthz", "-admin", "http://" + admin}
	for name, p := range map[string]k8sProbe{"readiness": app.ReadinessProbe, "liveness": app.LivenessProbe} {
		if admin == "" || !slices.Equal(p.Exec.Command, wantProbe) {
			t.Errorf("webapp %s probe %q, want %q (FORKWATCH_ADMIN_ADDR %q)", name, p.Exec.Command, wantProbe, admin)
		}
	}
	ann := pod.Metadata.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("pod annotations %v: want prometheus.io/scrape \"true\" and path /metrics", ann)
	}
	if len(exp.Ports) != 1 || ann["prometheus.io/port"] != itoa(exp.Ports[0].ContainerPort) {
		t.Errorf("prometheus.io/port %q must be the exporter's container port %+v", ann["prometheus.io/port"], exp.Ports)
	}

	var scrape struct {
		ScrapeConfigs []struct {
			JobName        string                  `yaml:"job_name"`
			KubernetesSD   []struct{ Role string } `yaml:"kubernetes_sd_configs"`
			RelabelConfigs []struct {
				SourceLabels []string `yaml:"source_labels"`
				Action       string   `yaml:"action"`
			} `yaml:"relabel_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(read(t, "deploy/k8s/prometheus-scrape.yml"), &scrape); err != nil {
		t.Fatalf("prometheus-scrape.yml: %v", err)
	}
	if len(scrape.ScrapeConfigs) != 1 || len(scrape.ScrapeConfigs[0].KubernetesSD) != 1 || scrape.ScrapeConfigs[0].KubernetesSD[0].Role != "pod" {
		t.Fatalf("prometheus-scrape.yml: want one job with kubernetes_sd_configs role pod: %+v", scrape)
	}
	keep := false
	for _, rc := range scrape.ScrapeConfigs[0].RelabelConfigs {
		keep = keep || (rc.Action == "keep" && slices.Equal(rc.SourceLabels, []string{"__meta_kubernetes_pod_annotation_prometheus_io_scrape"}))
	}
	if !keep {
		t.Errorf("prometheus-scrape.yml: no keep on the prometheus.io/scrape annotation")
	}
}

func env(c k8sContainer, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestReadme checks the PromQL cookbook (docs/cookbook.md, linked from the
// README): each query is shown with a link that opens exactly it in the
// expression browser of `make run`, uses only existing metrics, and the
// cookbook covers what a newcomer asks first. The screenshot the README
// shows must exist, and every docs/ page the README links to.
func TestReadme(t *testing.T) {
	readme := string(read(t, "README.md"))
	cookbook := string(read(t, "docs/cookbook.md"))
	_, section, ok := strings.Cut(cookbook, "\n## PromQL cookbook\n")
	if !ok {
		t.Fatal("docs/cookbook.md has no ## PromQL cookbook section")
	}
	for _, m := range regexp.MustCompile(`\]\(((?:docs/)?[A-Za-z0-9_./-]+\.md)\)`).FindAllStringSubmatch(readme, -1) {
		if _, err := os.Stat(filepath.Join(root(t), m[1])); err != nil {
			t.Errorf("README links to %s, which is missing", m[1])
		}
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	var shown []string
	for _, m := range regexp.MustCompile("(?s) *```promql\n *(.*?)\n *```").FindAllStringSubmatch(section, -1) {
		shown = append(shown, strings.TrimSpace(m[1]))
	}
	var linked []string
	for _, m := range regexp.MustCompile(`\(http://127\.0\.0\.1:9090/graph\?g0\.expr=([^&)\s]+)&g0\.tab=1\)`).FindAllStringSubmatch(section, -1) {
		q, err := url.QueryUnescape(m[1])
		if err != nil {
			t.Errorf("cookbook link %q: %v", m[1], err)
		}
		linked = append(linked, q)
	}
	if !slices.Equal(shown, linked) {
		t.Errorf("cookbook queries and their links differ:\nshown  %q\nlinked %q", shown, linked)
	}
	known := knownMetrics(t)
	for _, q := range shown {
		checkMetrics(t, "README cookbook", q, known)
	}
	all := strings.Join(shown, "\n")
	for _, must := range []string{"histogram_quantile(0.5", "histogram_quantile(0.99", "topk(", `request_count{http_status="500"}`, `http_status=~"5.."`, "sum by (http_status) (rate(request_count"} {
		if !strings.Contains(all, must) {
			t.Errorf("cookbook has no query with %q", must)
		}
	}
	for _, m := range regexp.MustCompile(`\]\(([A-Za-z0-9_./-]+\.png)\)`).FindAllStringSubmatch(readme, -1) {
		if st, err := os.Stat(filepath.Join(root(t), m[1])); err != nil || st.Size() == 0 {
			t.Errorf("README shows %s, which is missing or empty", m[1])
		}
	}
}
