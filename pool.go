package forkwatch

import (
	"context"
	"sync"
	"time"

	"github.com/forkwatch/forkwatch/statsd"
	"github.com/forkwatch/forkwatch/supervisor"
)

// poolGaugeEvery is how often the supervisor re-sends its gauges, so that
// an exporter that restarted (and so forgot them) has them again within a
// second or two. mapping.yml gives them a ttl of 30s: a supervisor that
// stopped sending loses them.
const poolGaugeEvery = time.Second

// poolGauges is what reportPool needs of a statsd.Client.
type poolGauges interface {
	SetPool(ready, configured, busy int)
	SetBuildInfo(version, goVersion string)
}

var _ poolGauges = (*statsd.Client)(nil)

// reportPool sends the pool gauges and the build info every interval
// (poolGaugeEvery) until ctx is done, but only while the supervisor's event loop beats: a
// stuck supervisor's gauges expire (ttl) and ForkwatchMetricsAbsent fires.
func reportPool(ctx context.Context, p *pool, g poolGauges, bi BuildInfo, now func() time.Time, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	g.SetBuildInfo(bi.Version, bi.GoVersion)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := p.state()
		if s.Retired || s.Beat.IsZero() || now().Sub(s.Beat) > healthStale {
			continue
		}
		g.SetPool(s.Ready, s.Configured, s.Busy)
		g.SetBuildInfo(bi.Version, bi.GoVersion)
	}
}

// pool is the supervisor's view of its workers for /healthz and the pool
// gauges. The supervisor's hooks write it from its event goroutine; the
// admin endpoint and the gauge sender read it from theirs.
type pool struct {
	mu         sync.Mutex
	configured int
	ready      map[int]bool // ready workers by PID: busy (a request in flight)?
	beat       time.Time    // the event loop's last heartbeat
	retired    bool         // a new supervisor took over (upgrade)
}

// poolState is a copy of the pool at one moment.
type poolState struct {
	Ready, Configured, Busy int
	// Beat is when the supervisor's event loop was last seen alive; zero
	// before it started.
	Beat time.Time
	// Retired: a new supervisor took over the pool's gauges (upgrade).
	Retired bool
}

func newPool(configured int) *pool {
	return &pool{configured: configured, ready: map[int]bool{}}
}

func (p *pool) state() poolState {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := poolState{Ready: len(p.ready), Configured: p.configured, Beat: p.beat, Retired: p.retired}
	for _, busy := range p.ready {
		if busy {
			s.Busy++
		}
	}
	return s
}

// retire stops the gauges: after an upgrade the new supervisor sends them.
func (p *pool) retire() {
	p.mu.Lock()
	p.retired = true
	p.mu.Unlock()
}

// hooks adds the pool's bookkeeping to h and ph, before their own calls.
func (p *pool) hooks(h supervisor.Hooks, ph supervisor.PoolHooks) (supervisor.Hooks, supervisor.PoolHooks) {
	ready, exit, status := h.Ready, h.Exit, h.Status
	h.Ready = func(w supervisor.Worker) {
		p.mu.Lock()
		p.ready[w.PID] = false
		p.mu.Unlock()
		if ready != nil {
			ready(w)
		}
	}
	h.Exit = func(w supervisor.Worker, reason supervisor.Reason, wasReady bool, err error) {
		p.mu.Lock()
		delete(p.ready, w.PID)
		p.mu.Unlock()
		if exit != nil {
			exit(w, reason, wasReady, err)
		}
	}
	h.Status = func(w supervisor.Worker, s supervisor.Status) {
		p.mu.Lock()
		if _, ok := p.ready[w.PID]; ok {
			p.ready[w.PID] = s.Busy > 0
		}
		p.mu.Unlock()
		if status != nil {
			status(w, s)
		}
	}
	scaled, alive := ph.Scaled, ph.Alive
	ph.Scaled = func(n int) {
		p.mu.Lock()
		p.configured = n
		p.mu.Unlock()
		if scaled != nil {
			scaled(n)
		}
	}
	ph.Alive = func(now time.Time) {
		p.mu.Lock()
		p.beat = now
		p.mu.Unlock()
		if alive != nil {
			alive(now)
		}
	}
	return h, ph
}
