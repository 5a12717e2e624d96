package ledger

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Path is where Handler serves the ledger.
const Path = "/audit"

// Ledger is the supervisor's account of what its workers served: each live
// worker's totals, read from its metrics segment when asked, plus the final
// totals of every worker that has exited. It is safe for concurrent use (the
// supervisor's hooks write, the admin endpoint reads).
type Ledger struct {
	appName string
	started time.Time

	mu      sync.Mutex
	live    map[int]Source // by worker PID
	exited  Totals
	dropped uint64 // latency samples exited workers could not keep
	gone    int
}

// Source reads a worker's cumulative served counts and the latency samples
// it had to drop (its ring full while the exporter was unreachable; their
// requests are still counted).
type Source func() (served Totals, droppedSamples uint64)

// NewLedger returns an empty ledger for a pool that sends app_name appName
// and started at started.
func NewLedger(appName string, started time.Time) *Ledger {
	return &Ledger{appName: appName, started: started, live: map[int]Source{}, exited: Totals{}}
}

// Track adds a live worker whose cumulative totals totals reads (from its
// metrics segment: counted the moment each request finished, so a worker
// killed later loses nothing from the ledger either).
func (l *Ledger) Track(pid int, totals Source) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.live[pid] = totals
}

// Exit reads an exited worker's totals one last time and moves them to the
// exited sum; the source is not read again (its segment may be freed).
func (l *Ledger) Exit(pid int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f, ok := l.live[pid]; ok {
		t, dropped := f()
		l.exited.Add(t)
		l.dropped += dropped
		delete(l.live, pid)
		l.gone++
	}
}

// Snapshot is the ledger at one moment, as served on the admin endpoint.
type Snapshot struct {
	// AppName is the app_name tag the pool sends.
	AppName string `json:"app_name"`
	// Started is when the pool started: no request was served before it.
	Started time.Time `json:"started"`
	// Taken is when the snapshot was taken.
	Taken time.Time `json:"taken"`
	// WorkersLive counts the workers that have reported totals and not exited.
	WorkersLive int `json:"workers_live"`
	// WorkersExited counts the workers whose totals were moved to the sum.
	WorkersExited int `json:"workers_exited"`
	// Series are the served counts per series, live and exited added up.
	Series []wireSeries `json:"series"`
	// DroppedSamples counts latency samples the workers could not keep
	// (their rings full while the exporter was unreachable): their
	// requests are counted, their latencies are not in the histogram.
	DroppedSamples uint64 `json:"dropped_latency_samples"`
}

// Served returns the counts per series, in a fixed order.
func (s Snapshot) Served() Totals { return fromWire(s.Series) }

// Snapshot returns the ledger now.
func (l *Ledger) Snapshot() Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	all := Totals{}
	all.Add(l.exited)
	dropped := l.dropped
	for _, f := range l.live {
		t, d := f()
		all.Add(t)
		dropped += d
	}
	return Snapshot{
		AppName:       l.appName,
		Started:       l.started,
		Taken:         time.Now(),
		WorkersLive:   len(l.live),
		WorkersExited: l.gone,
		Series:        all.wire(),

		DroppedSamples: dropped,
	}
}

// Handler serves the Snapshot as JSON at Path.
func (l *Ledger) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Path, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(l.Snapshot())
	})
	return mux
}
