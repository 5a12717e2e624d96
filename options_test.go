package forkwatch

import (
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func parse(t *testing.T, defaults func(*Options), env map[string]string, args ...string) (Options, error) {
	t.Helper()
	o := DefaultOptions()
	if defaults != nil {
		defaults(&o)
	}
	return parseOptions(&App{Name: "test"}, o, args, func(k string) string { return env[k] }, io.Discard)
}

func TestBadSettings(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" for accepted
	}{
		{"defaults", nil, ""},
		{"admin off", []string{"-admin-addr", ""}, ""},
		{"admin loopback", []string{"-admin-addr", "127.0.0.1:5050"}, ""},
		{"admin v6 loopback", []string{"-admin-addr", "[::1]:5050"}, ""},
		{"admin localhost", []string{"-admin-addr", "localhost:5050"}, ""},
		{"admin any", []string{"-admin-addr", "0.0.0.0:5050"}, "loopback"},
		{"admin lan", []string{"-admin-addr", "192.168.1.2:5050"}, "loopback"},
		{"admin name", []string{"-admin-addr", "example.com:5050"}, "loopback"},
		{"admin no port", []string{"-admin-addr", "5050"}, "missing port"},
		{"no workers", []string{"-workers", "0"}, "-workers 0"},
		{"negative grace", []string{"-grace", "-1s"}, "-grace"},
		{"jitter wraps", []string{"-max-requests", "10", "-max-requests-jitter", "18446744073709551615"}, "too large"},
		{"jitter alone", []string{"-max-requests-jitter", "5"}, "needs -max-requests"},
		{"report timeout too short", []string{"-report-timeout", "300ms"}, "twice"},
		{"statsd no port", []string{"-statsd-addr", "localhost"}, "-statsd-addr"},
		{"statsd relative unixgram", []string{"-statsd-addr", "unixgram://x.sock"}, "absolute"},
		{"no metrics skips statsd", []string{"-no-metrics", "-statsd-addr", "nonsense"}, ""},
		{"stray argument", []string{"serve"}, "unexpected argument"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, nil, nil, tc.args...)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("%v: %v", tc.args, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.wantErr)
			}
		})
	}
}

// A setting comes from, in rising order: DefaultOptions, App.Defaults, the
// environment, the command line.
func TestSettingPrecedence(t *testing.T) {
	code := func(o *Options) { o.Workers = 3; o.Grace = 4 * time.Second; o.HangTimeout = 0 }
	o, err := parse(t, code, map[string]string{"FORKWATCH_GRACE": "6s", "FORKWATCH_MAX_REQUESTS": "100"}, "-max-requests", "200")
	if err != nil {
		t.Fatal(err)
	}
	if o.Workers != 3 || o.Grace != 6*time.Second || o.MaxRequests != 200 || o.HangTimeout != 0 || o.ReportTimeout == 0 {
		t.Errorf("got workers %d grace %s max-requests %d hang-timeout %s report-timeout %s; want 3, 6s (env), 200 (flag), 0 (code), default",
			o.Workers, o.Grace, o.MaxRequests, o.HangTimeout, o.ReportTimeout)
	}
	if _, err := parse(t, nil, map[string]string{"FORKWATCH_WORKERS": "many"}); err == nil || !strings.Contains(err.Error(), "FORKWATCH_WORKERS") {
		t.Errorf("a bad environment value: %v, want an error naming the variable", err)
	}
}

// Every field of Options is one flag: a newcomer finds the flag from the
// field and back.
func TestEveryOptionIsAFlag(t *testing.T) {
	o := DefaultOptions()
	fs := o.flags("test")
	n := 0
	fs.VisitAll(func(f *flagT) { n++ })
	if want := numFields(o); n != want {
		t.Errorf("%d flags for %d Options fields", n, want)
	}
}

type flagT = flag.Flag

func numFields(o Options) int { return reflect.TypeOf(o).NumField() }

func TestWorkerProcs(t *testing.T) {
	tests := []struct {
		workers, procs, cpus, want int
	}{
		{5, 0, 2, 1},   // more workers than CPUs: one each, like fasthttp's prefork
		{2, 0, 8, 4},   // the CPUs shared out
		{3, 0, 8, 2},   // rounded down
		{5, 3, 2, 3},   // set by hand
		{1, 0, 16, 16}, // one worker: every CPU
	}
	for _, tc := range tests {
		o := Options{Workers: tc.workers, WorkerProcs: tc.procs}
		if got := o.workerProcs(tc.cpus); got != tc.want {
			t.Errorf("workers %d, -worker-procs %d, %d CPUs: GOMAXPROCS %d, want %d", tc.workers, tc.procs, tc.cpus, got, tc.want)
		}
	}
}
