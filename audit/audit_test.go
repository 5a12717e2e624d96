package audit

import (
	"encoding/json"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestIncrease(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tests := []struct {
		name   string
		points []Point
		want   float64
	}{
		{"no samples", nil, 0},
		{"born after start counts from zero", []Point{{at(2), 5, 1}, {at(4), 9, 1}}, 9},
		{"baseline before start", []Point{{at(-4), 100, 1}, {at(-2), 120, 1}, {at(2), 125, 1}, {at(4), 130, 1}}, 10},
		{"sample at start is the baseline", []Point{{at(0), 100, 1}, {at(2), 107, 1}}, 7},
		{"only before start", []Point{{at(-4), 100, 1}, {at(-2), 120, 1}}, 0},
		{"drop is a reset", []Point{{at(2), 50, 1}, {at(4), 80, 1}, {at(6), 10, 1}, {at(8), 15, 1}}, 95},
		{"new epoch without a drop is a reset", []Point{{at(2), 50, 1}, {at(4), 80, 1}, {at(6), 90, 2}, {at(8), 95, 2}}, 175},
		{"unknown epoch falls back to drops", []Point{{at(2), 50, 0}, {at(4), 80, 1}, {at(6), 90, 0}}, 90},
		{"restart right after start", []Point{{at(-2), 100, 1}, {at(2), 3, 2}}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Increase(tc.points, t0); got != tc.want {
				t.Errorf("Increase = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTallyConcurrent(t *testing.T) {
	var tally Tally
	keys := []Key{{"GET", "/test/", 200}, {"GET", "/test1/", 500}, {"POST", "unmatched", 404}}
	const perKey, goroutines = 1000, 8
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perKey; i++ {
				for _, k := range keys {
					tally.Record(k.Method, k.Endpoint, k.Status, time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	got := tally.Totals()
	if len(got) != len(keys) {
		t.Fatalf("%d series, want %d: %v", len(got), len(keys), got)
	}
	for _, k := range keys {
		if got[k] != perKey*goroutines {
			t.Errorf("%v = %d, want %d", k, got[k], perKey*goroutines)
		}
	}
}

func TestTallyRecordDoesNotAllocate(t *testing.T) {
	var tally Tally
	tally.Record("GET", "/test/", 200, 0)
	if n := testing.AllocsPerRun(1000, func() { tally.Record("GET", "/test/", 200, 0) }); n != 0 {
		t.Errorf("Record allocates %v times per call on a known series, want 0", n)
	}
}

func TestMessageRoundTrip(t *testing.T) {
	in := Totals{{"GET", "/test/", 200}: 7, {"HEAD", "unmatched", 404}: 1}
	out, ok, err := ParseMessage(Message(in))
	if !ok || err != nil {
		t.Fatalf("ParseMessage: ok=%v err=%v", ok, err)
	}
	if len(out) != len(in) || out[Key{"GET", "/test/", 200}] != 7 || out[Key{"HEAD", "unmatched", 404}] != 1 {
		t.Errorf("round trip: got %v, want %v", out, in)
	}
	for name, msg := range map[string]string{"other kind": "hello", "empty": ""} {
		if _, ok, err := ParseMessage([]byte(msg)); ok || err != nil {
			t.Errorf("%s: ok=%v err=%v, want not an audit message", name, ok, err)
		}
	}
	if _, ok, err := ParseMessage(append(append([]byte{}, messagePrefix...), "{"...)); !ok || err == nil {
		t.Errorf("truncated: ok=%v err=%v, want an error", ok, err)
	}
}

func TestLedger(t *testing.T) {
	started := time.Now().Add(-time.Minute).Truncate(time.Second)
	l := NewLedger("webapp", started)
	k200, k500 := Key{"GET", "/test/", 200}, Key{"GET", "/test1/", 500}
	send := func(pid int, t Totals) {
		if ok, err := l.Message(pid, Message(t)); !ok || err != nil {
			panic("bad message")
		}
	}
	send(1, Totals{k200: 3})
	send(1, Totals{k200: 5})          // cumulative: replaces 3
	send(2, Totals{k200: 2, k500: 1}) // another worker
	if ok, _ := l.Message(2, []byte("not ours")); ok {
		t.Error("a foreign message was taken as totals")
	}
	l.Exit(2)
	l.Exit(3) // never reported: nothing to move
	send(4, Totals{k500: 4})

	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	snap, err := FetchLedger(t.Context(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	got := snap.Served()
	if got[k200] != 7 || got[k500] != 5 || len(got) != 2 {
		t.Errorf("served %v, want %v=7 %v=5", got, k200, k500)
	}
	if snap.WorkersLive != 2 || snap.WorkersExited != 1 || snap.AppName != "webapp" || !snap.Started.Equal(started) {
		b, _ := json.Marshal(snap)
		t.Errorf("snapshot %s", b)
	}
}

func TestCompare(t *testing.T) {
	k200, k500, k404 := Key{"GET", "/test/", 200}, Key{"GET", "/test1/", 500}, Key{"GET", "unmatched", 404}
	snap := Snapshot{AppName: "webapp", Series: Totals{k200: 10, k500: 4}.wire()}
	r := compare(snap, map[Key]float64{k200: 10, k500: 1, k404: 2})
	want := map[Key]Row{
		k200: {Key: k200, Served: 10, Seen: 10, Missing: 0},
		k500: {Key: k500, Served: 4, Seen: 1, Missing: 3},
		k404: {Key: k404, Served: 0, Seen: 2, Missing: -2},
	}
	for k, w := range want {
		if got := r.Row(k); got != w {
			t.Errorf("row %v = %+v, want %+v", k, got, w)
		}
	}
	if r.OK() || r.Served != 14 || r.Seen != 13 || r.Missing != 1 {
		t.Errorf("report OK=%v served=%d seen=%d missing=%d", r.OK(), r.Served, r.Seen, r.Missing)
	}
}
