package ledger

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Path is where Handler serves the ledger.
const Path = "/audit"

// Ledger is the supervisor's account of what its workers served: the latest
// totals each live worker reported, plus the final totals of every worker
// that has exited. It is safe for concurrent use (the supervisor's hooks
// write, the admin endpoint reads).
type Ledger struct {
	appName string
	started time.Time

	mu     sync.Mutex
	live   map[int]Totals // by worker PID
	exited Totals
	gone   int
}

// NewLedger returns an empty ledger for a pool that sends app_name appName
// and started at started.
func NewLedger(appName string, started time.Time) *Ledger {
	return &Ledger{appName: appName, started: started, live: map[int]Totals{}, exited: Totals{}}
}

// Message takes a worker's message (from Hooks.Message). It returns false
// for a message that is not a worker's totals, and an error for totals that
// do not decode.
func (l *Ledger) Message(pid int, msg []byte) (bool, error) {
	t, ok, err := ParseMessage(msg)
	if !ok || err != nil {
		return ok, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.live[pid] = t // cumulative: the newest replaces the older
	return true, nil
}

// Exit moves an exited worker's last totals to the exited sum. A worker
// sends its final totals after its drain and before it exits, and the
// supervisor delivers a worker's messages before its exit, so nothing is
// lost on a graceful stop; a killed worker's counts since its last message
// are.
func (l *Ledger) Exit(pid int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.live[pid]; ok {
		l.exited.Add(t)
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
}

// Served returns the counts per series, in a fixed order.
func (s Snapshot) Served() Totals { return fromWire(s.Series) }

// Snapshot returns the ledger now.
func (l *Ledger) Snapshot() Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	all := Totals{}
	all.Add(l.exited)
	for _, t := range l.live {
		all.Add(t)
	}
	return Snapshot{
		AppName:       l.appName,
		Started:       l.started,
		Taken:         time.Now(),
		WorkersLive:   len(l.live),
		WorkersExited: l.gone,
		Series:        all.wire(),
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
