package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Key names one request_count series (app_name aside, which is fixed per
// process).
type Key struct {
	Method   string `json:"method"`
	Endpoint string `json:"endpoint"`
	Status   int    `json:"http_status"`
}

// Less orders keys by endpoint, status, then method.
func (k Key) Less(o Key) bool {
	if k.Endpoint != o.Endpoint {
		return k.Endpoint < o.Endpoint
	}
	if k.Status != o.Status {
		return k.Status < o.Status
	}
	return k.Method < o.Method
}

// Totals are request counts per series.
type Totals map[Key]uint64

// Sum is the count over all series.
func (t Totals) Sum() uint64 {
	var n uint64
	for _, v := range t {
		n += v
	}
	return n
}

// Add adds o into t.
func (t Totals) Add(o Totals) {
	for k, v := range o {
		t[k] += v
	}
}

// Keys returns t's series in a fixed order: endpoint, status, method.
func (t Totals) Keys() []Key {
	keys := make([]Key, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Less(keys[j]) })
	return keys
}

// Tally counts requests per series. It implements worker.Recorder; Record
// takes one map lookup and one atomic add, and allocates only the first time
// a series is seen (label sets are bounded, so that is a few times per
// process).
type Tally struct {
	// counters is replaced, never modified, so Record reads it without a
	// lock; mu serialises the copy-on-write of new series.
	counters atomic.Pointer[map[Key]*atomic.Uint64]
	mu       sync.Mutex
}

// Record implements worker.Recorder.
func (t *Tally) Record(method, endpoint string, status int, _ time.Duration) {
	k := Key{method, endpoint, status}
	if m := t.counters.Load(); m != nil {
		if c, ok := (*m)[k]; ok {
			c.Add(1)
			return
		}
	}
	t.add(k)
}

func (t *Tally) add(k Key) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.counters.Load()
	if old != nil {
		if c, ok := (*old)[k]; ok { // another request added it meanwhile
			c.Add(1)
			return
		}
	}
	m := make(map[Key]*atomic.Uint64, 1+lenOf(old))
	if old != nil {
		for key, c := range *old {
			m[key] = c
		}
	}
	c := new(atomic.Uint64)
	c.Add(1)
	m[k] = c
	t.counters.Store(&m)
}

func lenOf(m *map[Key]*atomic.Uint64) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// Totals returns a copy of the counts so far.
func (t *Tally) Totals() Totals {
	out := Totals{}
	if m := t.counters.Load(); m != nil {
		for k, c := range *m {
			out[k] = c.Load()
		}
	}
	return out
}

// messagePrefix marks a supervisor message as a worker's totals, so the
// supervisor's message channel can carry other kinds too; the version lets
// the format change.
var messagePrefix = []byte("forkwatch-audit/1 ")

// wireSeries is one series on the wire and in the admin JSON.
type wireSeries struct {
	Key
	Served uint64 `json:"served"`
}

func (t Totals) wire() []wireSeries {
	out := make([]wireSeries, 0, len(t))
	for _, k := range t.Keys() {
		out = append(out, wireSeries{k, t[k]})
	}
	return out
}

func fromWire(ws []wireSeries) Totals {
	t := make(Totals, len(ws))
	for _, s := range ws {
		t[s.Key] += s.Served
	}
	return t
}

// Message encodes totals as a message for the supervisor (Child.Send): a
// worker's cumulative counts since it started.
func Message(t Totals) []byte {
	b, _ := json.Marshal(t.wire()) // plain structs: cannot fail
	return append(append([]byte{}, messagePrefix...), b...)
}

// ParseMessage decodes a Message. ok is false for a message of another kind;
// err is set for an audit message that does not decode.
func ParseMessage(msg []byte) (t Totals, ok bool, err error) {
	rest, ok := bytes.CutPrefix(msg, messagePrefix)
	if !ok {
		return nil, false, nil
	}
	var ws []wireSeries
	if err := json.Unmarshal(rest, &ws); err != nil {
		return nil, true, fmt.Errorf("ledger: bad totals message: %w", err)
	}
	return fromWire(ws), true, nil
}
