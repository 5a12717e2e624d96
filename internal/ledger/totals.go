package ledger

import (
	"sort"
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
