package ledger

import (
	"encoding/json"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestLedger(t *testing.T) {
	started := time.Now().Add(-time.Minute).Truncate(time.Second)
	l := NewLedger("webapp", started)
	k200, k500 := Key{"GET", "/test/", 200}, Key{"GET", "/test1/", 500}
	// Each worker's totals are read when asked (its segment), as they are then.
	var mu sync.Mutex
	segments := map[int]Totals{}
	track := func(pid int, t Totals) {
		mu.Lock()
		segments[pid] = t
		mu.Unlock()
		l.Track(pid, func() (Totals, uint64) {
			mu.Lock()
			defer mu.Unlock()
			return segments[pid], uint64(pid) // pid dropped samples, to see them add up
		})
	}
	track(1, Totals{k200: 3})
	track(1, Totals{k200: 5})          // cumulative: replaces 3
	track(2, Totals{k200: 2, k500: 1}) // another worker
	l.Exit(2)
	segments[2] = Totals{k200: 100} // freed after Exit: never read again
	l.Exit(3)                       // never tracked: nothing to move
	track(4, Totals{k500: 4})

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
	if snap.DroppedSamples != 1+2+4 {
		t.Errorf("dropped samples %d, want 7 (live 1 and 4, exited 2)", snap.DroppedSamples)
	}
	if snap.WorkersLive != 2 || snap.WorkersExited != 1 || snap.AppName != "webapp" || !snap.Started.Equal(started) {
		b, _ := json.Marshal(snap)
		t.Errorf("snapshot %s", b)
	}
}
