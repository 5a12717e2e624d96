package statsd

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/statsd_exporter/pkg/line"
	"github.com/prometheus/statsd_exporter/pkg/mapper"
)

// FuzzSanitizeTagValue feeds arbitrary client bytes (a method, a path) through
// SanitizeTagValue into a DogStatsD line, and parses that line with
// statsd_exporter's own parser: the line must stay one sample of
// request_count with exactly the four tag keys, the value must come back
// unchanged, and it must be a valid Prometheus label value. A '|', '#', ',',
// ':' or newline that got through would split the line, add a tag, or
// change the metric.
//
// go test -fuzz=FuzzSanitizeTagValue ./statsd (make fuzz runs it longer).
func FuzzSanitizeTagValue(f *testing.F) {
	for _, s := range []string{
		"", "GET", "/users/{id}", "unmatched", "a|b", "a#b", "a,b", "a:b", "a\nb", "a\r\nb",
		"x|c|#evil:1", "endpoint:/x,http_status:999", "@0.5", "\x00\xff\xfe", "é", "\u2028",
		"%0a%7c", `"quoted\"`, " spaced ", strings.Repeat("a", 300), strings.Repeat("é", 150),
		"request_count:1|c\nevil:1|c",
	} {
		f.Add(s)
	}
	parser := line.NewParser()
	parser.EnableDogstatsdParsing()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, s string) {
		v := SanitizeTagValue(s)

		if v == "" || len(v) > maxTagValue {
			t.Fatalf("SanitizeTagValue(%q) = %q: want 1 to %d bytes", s, v, maxTagValue)
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`|#,:@"\`, c) >= 0 {
				t.Fatalf("SanitizeTagValue(%q) = %q: byte %q at %d", s, v, c, i)
			}
		}
		if !utf8.ValidString(v) {
			t.Fatalf("SanitizeTagValue(%q) = %q: not UTF-8, not a Prometheus label value", s, v)
		}
		if again := SanitizeTagValue(v); again != v {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, v, again)
		}
		if want := min(max(len(s), 1), maxTagValue); len(v) != want {
			t.Fatalf("SanitizeTagValue(%q) = %q: %d bytes, want %d (one per input byte)", s, v, len(v), want)
		}

		ln := RequestCount + ":1|c|#app_name:webapp,method:" + v + ",endpoint:" + v + ",http_status:200"
		sampleErrors := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "e"}, []string{"reason"})
		tagErrors := prometheus.NewCounter(prometheus.CounterOpts{Name: "t"})
		ignored := prometheus.NewCounter(prometheus.CounterOpts{Name: "i"})
		events := parser.LineToEvents(ln, *sampleErrors, ignored, tagErrors, ignored, log)
		if len(events) != 1 {
			t.Fatalf("line %q parsed into %d events, want 1", ln, len(events))
		}
		e := events[0]
		labels := e.Labels()
		if e.MetricName() != RequestCount || e.MetricType() != mapper.MetricTypeCounter || e.Value() != 1 {
			t.Fatalf("line %q parsed as %s %s %v", ln, e.MetricName(), e.MetricType(), e.Value())
		}
		if len(labels) != 4 || labels["method"] != v || labels["endpoint"] != v ||
			labels["app_name"] != "webapp" || labels["http_status"] != "200" {
			t.Fatalf("line %q parsed with labels %v", ln, labels)
		}
	})
}
