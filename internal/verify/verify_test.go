package verify

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

func key(ep string, st int) Key { return Key{Method: "GET", Endpoint: ep, Status: st} }

func TestRequestTotals(t *testing.T) {
	fams, err := ParseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	got := RequestTotals(fams)
	want := Totals{key("/test/", 200): 10, {Method: "HEAD", Endpoint: "/test/", Status: 200}: 2, key("/test1/", 500): 3}
	if !Equal(got, want) {
		t.Errorf("RequestTotals = %v, want %v", got, want)
	}
	if s := Sum(fams, "request_count", map[string]string{"endpoint": "/test/"}); s != 12 {
		t.Errorf("Sum over /test/ = %v, want 12", s)
	}
	if s := Sum(fams, "forkwatch_workers", nil); s != 5 {
		t.Errorf("Sum of the gauge = %v, want 5", s)
	}
	if _, err := ParseMetrics(strings.NewReader("request_count{ 1\n")); err == nil {
		t.Error("ParseMetrics accepted a broken exposition")
	}
}

func TestCompareLoad(t *testing.T) {
	rec := &Record{Sent: []Sent{
		{Path: "/test/", Endpoint: "/test/", Status: 200, Count: 60},
		{Path: "/test1/", Endpoint: "/test1/", Status: 500, Count: 20},
		{Path: "/nope", Endpoint: "unmatched", Status: 404, Count: 10},
		{Path: "/test/", Endpoint: "/test/", Status: 0, Count: 1}, // no answer: not compared
	}}
	rec.SetBaseline(Totals{key("/test/", 200): 5, key("/old", 200): 7, key("/gone", 200): 4})
	tests := map[string]struct {
		now   Totals
		diffs map[Key]int64 // the rows that must differ, and by how much
		rows  int
	}{
		"exact": {
			now:  Totals{key("/test/", 200): 65, key("/test1/", 500): 20, key("unmatched", 404): 10, key("/old", 200): 7, key("/gone", 200): 4},
			rows: 3,
		},
		"not scraped yet": {
			now:   Totals{key("/test/", 200): 5, key("/old", 200): 7, key("/gone", 200): 4},
			diffs: map[Key]int64{key("/test/", 200): -60, key("/test1/", 500): -20, key("unmatched", 404): -10},
			rows:  3,
		},
		"others' traffic": {
			now:   Totals{key("/test/", 200): 68, key("/test1/", 500): 20, key("unmatched", 404): 10, key("/old", 200): 9, key("/gone", 200): 4},
			diffs: map[Key]int64{key("/test/", 200): 3, key("/old", 200): 2},
			rows:  4,
		},
		"counter reset": {
			now:   Totals{key("/test/", 200): 65, key("/test1/", 500): 20, key("unmatched", 404): 10, key("/old", 200): 7},
			diffs: map[Key]int64{key("/gone", 200): -4},
			rows:  4,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := CompareLoad(rec, tc.now)
			if len(r.Rows) != tc.rows {
				t.Errorf("%d rows, want %d: %+v", len(r.Rows), tc.rows, r.Rows)
			}
			for _, row := range r.Rows {
				if want := tc.diffs[row.Key]; row.Diff() != want {
					t.Errorf("%v: difference %v, want %v", row.Key, row.Diff(), want)
				}
			}
			if got := r.Differences(); got != len(tc.diffs) {
				t.Errorf("Differences = %d, want %d", got, len(tc.diffs))
			}
		})
	}
}

func TestCompareServed(t *testing.T) {
	k200, k500, k404 := key("/test/", 200), key("/test1/", 500), key("unmatched", 404)
	r := CompareServed(Totals{k200: 10, k500: 4}, Totals{k200: 10, k500: 1, k404: 2})
	want := map[Key]Row{
		k200: {Key: k200, Expected: 10, Seen: 10},
		k500: {Key: k500, Expected: 4, Seen: 1},
		k404: {Key: k404, Expected: 0, Seen: 2},
	}
	for k, w := range want {
		if got := r.Row(k); got != w {
			t.Errorf("row %v = %+v, want %+v", k, got, w)
		}
	}
	if e, s := r.Totals(); r.OK() || e != 14 || s != 13 || !r.Missing() {
		t.Errorf("report OK=%v expected=%d seen=%d missing=%v", r.OK(), e, s, r.Missing())
	}
}

func TestRecordSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "last-load.json")
	if _, err := Load(path); !errors.Is(err, ErrNoRecord) {
		t.Fatalf("Load of a missing record: %v, want ErrNoRecord", err)
	}
	rec := &Record{URL: "http://x", Mix: "/a=1", Started: time.Unix(100, 0).UTC(), Errors: 2,
		Sent: []Sent{{Path: "/a", Endpoint: "/a", Status: 200, Count: 9}}}
	rec.SetBaseline(Totals{key("/a", 200): 4})
	if err := rec.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != rec.URL || got.Errors != 2 || !got.Started.Equal(rec.Started) ||
		!Equal(got.BaselineTotals(), rec.BaselineTotals()) || !Equal(got.SentTotals(), Totals{key("/a", 200): 9}) {
		t.Errorf("loaded %+v, saved %+v", got, rec)
	}
}

func TestPrint(t *testing.T) {
	var b bytes.Buffer
	r := Report{Expected: "load sent", Rows: []Row{
		{Key: key("/a", 200), Expected: 10, Seen: 10},
		{Key: key("/b", 500), Expected: 5, Seen: 7},
	}}
	if err := r.Print(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	rows := strings.Split(strings.TrimSpace(out), "\n")
	if len(rows) != 4 {
		t.Fatalf("table has %d rows, want header, 2 rows, total:\n%s", len(rows), out)
	}
	if strings.Contains(rows[1], "differs") || !strings.Contains(rows[2], "+2") || !strings.Contains(rows[2], "<- differs") {
		t.Errorf("only the /b row must be marked, with +2:\n%s", out)
	}
	if f := strings.Fields(rows[3]); len(f) != 4 || f[0] != "total" || f[1] != "15" || f[2] != "17" || f[3] != "+2" {
		t.Errorf("total row %q, want total 15 17 +2", rows[3])
	}
	for _, line := range rows {
		if strings.HasSuffix(line, " ") {
			t.Errorf("trailing blank in %q", line)
		}
	}
}

func TestSettle(t *testing.T) {
	t.Run("settles", func(t *testing.T) {
		n := 0
		read := func(context.Context) (Totals, error) {
			n++
			return Totals{key("/a", 200): uint64(min(n, 3))}, nil
		}
		got, ok, err := Settle(context.Background(), read, Equal, time.Millisecond, 5*time.Second)
		if err != nil || !ok || got[key("/a", 200)] != 3 {
			t.Errorf("Settle = %v, %v, %v; want the value 3 once two reads agree", got, ok, err)
		}
	})
	t.Run("keeps changing", func(t *testing.T) {
		n := 0
		read := func(context.Context) (Totals, error) {
			n++
			return Totals{key("/a", 200): uint64(n)}, nil
		}
		_, ok, err := Settle(context.Background(), read, Equal, time.Millisecond, 50*time.Millisecond)
		if err != nil || ok {
			t.Errorf("Settle on ever-changing totals: settled %v, err %v; want not settled", ok, err)
		}
	})
}
