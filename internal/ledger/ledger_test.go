package ledger

import (
	"encoding/json"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

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
	resp, err := srv.Client().Get(srv.URL + Path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var snap Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
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
