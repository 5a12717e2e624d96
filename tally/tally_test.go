package tally

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const exposition = `# HELP request_count Requests served.
# TYPE request_count counter
request_count{app_name="webapp",endpoint="/test/",http_status="200",method="GET"} 10
request_count{app_name="webapp",endpoint="/test/",http_status="200",method="HEAD"} 2
request_count{app_name="webapp",endpoint="/test1/",http_status="500",method="GET"} 3
# HELP forkwatch_workers Workers.
# TYPE forkwatch_workers gauge
forkwatch_workers{app_name="webapp"} 5
`

func TestParseExporter(t *testing.T) {
	got, err := ParseExporter(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	want := Totals{{"/test/", "200"}: 12, {"/test1/", "500"}: 3}
	if !equal(got, want) {
		t.Errorf("ParseExporter = %v, want %v (methods summed, other metrics ignored)", got, want)
	}
	if _, err := ParseExporter(strings.NewReader("request_count{ 1\n")); err == nil {
		t.Error("ParseExporter accepted a broken exposition")
	}
}

func TestCompare(t *testing.T) {
	rec := &Record{Sent: []Sent{
		{Path: "/test/", Endpoint: "/test/", Status: 200, Count: 60},
		{Path: "/test1/", Endpoint: "/test1/", Status: 500, Count: 20},
		{Path: "/nope", Endpoint: "unmatched", Status: 404, Count: 10},
		{Path: "/test/", Endpoint: "/test/", Status: 0, Count: 1}, // no answer: not compared
	}}
	rec.SetBaseline(Totals{{"/test/", "200"}: 5, {"/old", "200"}: 7, {"/gone", "200"}: 4})
	tests := map[string]struct {
		now   Totals
		diffs map[Key]float64 // the lines that must differ, and by how much
		lines int
	}{
		"exact": {
			now:   Totals{{"/test/", "200"}: 65, {"/test1/", "500"}: 20, {"unmatched", "404"}: 10, {"/old", "200"}: 7, {"/gone", "200"}: 4},
			lines: 3,
		},
		"not scraped yet": {
			now:   Totals{{"/test/", "200"}: 5, {"/old", "200"}: 7, {"/gone", "200"}: 4},
			diffs: map[Key]float64{{"/test/", "200"}: -60, {"/test1/", "500"}: -20, {"unmatched", "404"}: -10},
			lines: 3,
		},
		"others' traffic": {
			now:   Totals{{"/test/", "200"}: 68, {"/test1/", "500"}: 20, {"unmatched", "404"}: 10, {"/old", "200"}: 9, {"/gone", "200"}: 4},
			diffs: map[Key]float64{{"/test/", "200"}: 3, {"/old", "200"}: 2},
			lines: 4,
		},
		"counter reset": {
			now:   Totals{{"/test/", "200"}: 65, {"/test1/", "500"}: 20, {"unmatched", "404"}: 10, {"/old", "200"}: 7},
			diffs: map[Key]float64{{"/gone", "200"}: -4},
			lines: 4,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			lines := Compare(rec, tc.now)
			if len(lines) != tc.lines {
				t.Errorf("%d lines, want %d: %+v", len(lines), tc.lines, lines)
			}
			for _, l := range lines {
				if want := tc.diffs[l.Key]; l.Diff() != want {
					t.Errorf("%v: difference %v, want %v", l.Key, l.Diff(), want)
				}
			}
			if got := Differences(lines); got != len(tc.diffs) {
				t.Errorf("Differences = %d, want %d", got, len(tc.diffs))
			}
		})
	}
}

func TestRecordSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "last-load.json")
	if _, err := Load(path); !errors.Is(err, ErrNoRecord) {
		t.Fatalf("Load of a missing record: %v, want ErrNoRecord", err)
	}
	rec := &Record{URL: "http://x", Mix: "/a=1", Started: time.Unix(100, 0).UTC(), Errors: 2,
		Sent: []Sent{{Path: "/a", Endpoint: "/a", Status: 200, Count: 9}}}
	rec.SetBaseline(Totals{{"/a", "200"}: 4})
	if err := rec.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != rec.URL || got.Errors != 2 || !got.Started.Equal(rec.Started) ||
		!equal(got.BaselineTotals(), rec.BaselineTotals()) || !equal(got.SentTotals(), rec.SentTotals()) {
		t.Errorf("loaded %+v, saved %+v", got, rec)
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	lines := []Line{
		{Key: Key{"/a", "200"}, Before: 1, Now: 11, Sent: 10},
		{Key: Key{"/b", "500"}, Before: 0, Now: 7, Sent: 5},
	}
	if err := WriteTable(&b, lines); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	rows := strings.Split(strings.TrimSpace(out), "\n")
	if len(rows) != 4 {
		t.Fatalf("table has %d rows, want header, 2 lines, total:\n%s", len(rows), out)
	}
	if strings.Contains(rows[1], "differs") || !strings.Contains(rows[2], "+2") || !strings.Contains(rows[2], "<- differs") {
		t.Errorf("only the /b row must be marked, with +2:\n%s", out)
	}
	if f := strings.Fields(rows[3]); len(f) != 6 || f[0] != "total" || f[3] != "17" || f[4] != "15" || f[5] != "+2" {
		t.Errorf("total row %q, want total 1 18 17 15 +2", rows[3])
	}
}

func TestSettle(t *testing.T) {
	t.Run("settles", func(t *testing.T) {
		n := 0
		read := func(context.Context) (Totals, error) {
			n++
			return Totals{{"/a", "200"}: float64(min(n, 3))}, nil
		}
		got, ok, err := Settle(context.Background(), read, time.Millisecond, 5*time.Second)
		if err != nil || !ok || got[Key{"/a", "200"}] != 3 {
			t.Errorf("Settle = %v, %v, %v; want the value 3 once two reads agree", got, ok, err)
		}
	})
	t.Run("keeps changing", func(t *testing.T) {
		n := 0
		read := func(context.Context) (Totals, error) {
			n++
			return Totals{{"/a", "200"}: float64(n)}, nil
		}
		_, ok, err := Settle(context.Background(), read, time.Millisecond, 50*time.Millisecond)
		if err != nil || ok {
			t.Errorf("Settle on ever-changing totals: settled %v, err %v; want not settled", ok, err)
		}
	})
}
