package forkwatch

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/forkwatch/forkwatch/supervisor"
)

type gaugeRecorder struct {
	mu    sync.Mutex
	sends []string
}

func (g *gaugeRecorder) SetPool(ready, configured, busy int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sends = append(g.sends, fmt.Sprintf("pool %d/%d/%d", ready, configured, busy))
}

func (g *gaugeRecorder) SetBuildInfo(version, goVersion string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sends = append(g.sends, "build "+version+" "+goVersion)
}

func (g *gaugeRecorder) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.sends)
}

// TestPoolBusy: a ready worker is busy while its last report had a
// request in flight; workers not ready yet do not count.
func TestPoolBusy(t *testing.T) {
	p := newPool(3)
	h, _ := p.hooks(supervisor.Hooks{}, supervisor.PoolHooks{})
	a, b, c := supervisor.Worker{ID: 1, PID: 1}, supervisor.Worker{ID: 2, PID: 2}, supervisor.Worker{ID: 3, PID: 3}
	h.Ready(a)
	h.Ready(b)
	h.Status(a, supervisor.Status{Busy: time.Millisecond, BusyWith: "/test/"})
	h.Status(c, supervisor.Status{Busy: time.Second}) // not ready: ignored
	if s := p.state(); s.Ready != 2 || s.Busy != 1 || s.Configured != 3 {
		t.Errorf("state %+v, want 2 ready, 1 busy, 3 configured", s)
	}
	h.Status(a, supervisor.Status{Handled: 1})
	h.Status(b, supervisor.Status{Busy: time.Millisecond})
	h.Exit(b, supervisor.ReasonCrash, true, nil)
	if s := p.state(); s.Ready != 1 || s.Busy != 0 {
		t.Errorf("state %+v, want 1 ready, 0 busy", s)
	}
}

// TestReportPool: the gauges are re-sent every interval while the event
// loop beats, and not while it is stuck.
func TestReportPool(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	p := newPool(2)
	h, ph := p.hooks(supervisor.Hooks{}, supervisor.PoolHooks{})
	h.Ready(supervisor.Worker{ID: 1, PID: 1})
	ph.Alive(now)
	g := &gaugeRecorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		reportPool(ctx, p, g, BuildInfo{"v1", "go1.26.8"}, clock, 5*time.Millisecond)
	}()
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for g.count() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d sends, want %d", g.count(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor(5) // build info at once, then pool and build info per tick
	mu.Lock()
	now = now.Add(time.Minute) // the loop has not beaten for a minute
	mu.Unlock()
	time.Sleep(20 * time.Millisecond) // let a send that was under way finish
	stuck := g.count()
	time.Sleep(30 * time.Millisecond)
	if n := g.count(); n != stuck {
		t.Errorf("%d gauge sends while the event loop was stuck", n-stuck)
	}
	cancel()
	<-done
	if g.sends[0] != "build v1 go1.26.8" || g.sends[1] != "pool 1/2/0" {
		t.Errorf("sends %q", g.sends[:2])
	}
}

// TestReportPoolRetired: after an upgrade handed the pool to a new
// supervisor, the old one's gauges stop, though its event loop still beats.
func TestReportPoolRetired(t *testing.T) {
	now := time.Now()
	p := newPool(2)
	_, ph := p.hooks(supervisor.Hooks{}, supervisor.PoolHooks{})
	ph.Alive(now)
	p.retire()
	g := &gaugeRecorder{}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	reportPool(ctx, p, g, BuildInfo{"v1", "go1.26.8"}, func() time.Time { return now }, 5*time.Millisecond)
	if n := g.count(); n != 1 {
		t.Errorf("%d sends after retire, want 1 (the build info at start): %q", n, g.sends)
	}
}
