package verify

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/forkwatch/forkwatch/statsd"
)

// Lookback is how far before a start time the raw samples are read, to find
// each series' value just before it. It must exceed the scrape interval.
const Lookback = 5 * time.Minute

// Prometheus reads a Prometheus server's HTTP API.
type Prometheus struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:9090.
	URL string
	// Client does the requests. Default: a client with a 30s timeout.
	Client *http.Client
}

func (p *Prometheus) api() (promv1.API, error) {
	client := p.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	c, err := api.NewClient(api.Config{Address: p.URL, Client: client})
	if err != nil {
		return nil, fmt.Errorf("verify: Prometheus %s: %w", p.URL, err)
	}
	return promv1.NewAPI(c), nil
}

// Query runs an instant query at now.
func (p *Prometheus) Query(ctx context.Context, expr string) (model.Value, error) {
	a, err := p.api()
	if err != nil {
		return nil, err
	}
	v, _, err := a.Query(ctx, expr, time.Now())
	if err != nil {
		return nil, fmt.Errorf("verify: query %s at %s: %w", expr, p.URL, err)
	}
	return v, nil
}

// Vector runs an instant query whose result is a vector.
func (p *Prometheus) Vector(ctx context.Context, expr string) (model.Vector, error) {
	v, err := p.Query(ctx, expr)
	if err != nil {
		return nil, err
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("verify: query %s: result is a %s, want a vector", expr, v.Type())
	}
	return vec, nil
}

// Totals runs Query: the request totals Prometheus has now.
func (p *Prometheus) Totals(ctx context.Context) (Totals, error) {
	vec, err := p.Vector(ctx, Query)
	if err != nil {
		return nil, err
	}
	out := Totals{}
	for _, s := range vec {
		l := map[string]string{}
		for k, v := range s.Metric {
			l[string(k)] = string(v)
		}
		out[keyOf(l)] += count(float64(s.Value))
	}
	return out, nil
}

// LastScrape returns the oldest of the latest scrapes of the exporters that
// Prometheus has request_count from: once it is past a moment, every
// exporter's counts from before that moment are in. ok is false when
// Prometheus has no such series.
func (p *Prometheus) LastScrape(ctx context.Context) (t time.Time, ok bool, err error) {
	vec, err := p.Vector(ctx, "min(max by (instance) (timestamp("+statsd.RequestCount+")))")
	if err != nil || len(vec) == 0 {
		return time.Time{}, false, err
	}
	return time.Unix(0, int64(float64(vec[0].Value)*1e9)), true, nil
}

// Point is one raw sample of a counter, with the start time (Unix seconds)
// of the process that exposed it, or 0 if unknown.
type Point struct {
	T     time.Time
	V     float64
	Epoch float64
}

// Increase adds up how much a counter grew after since, from its raw samples
// in time order, like PromQL's increase() without extrapolation: a value
// lower than the one before, or a sample from a restarted exporter (a new
// Epoch), is a counter reset, and the whole new value counts. The last
// sample at or before since is the baseline; a series with none was created
// after since and counts from zero.
func Increase(points []Point, since time.Time) float64 {
	var total float64
	var prev *Point
	for i := range points {
		pt := &points[i]
		if !pt.T.After(since) {
			prev = pt
			continue
		}
		switch {
		case prev == nil:
			total += pt.V
		case pt.V < prev.V, pt.Epoch != 0 && prev.Epoch != 0 && pt.Epoch != prev.Epoch:
			total += pt.V
		default:
			total += pt.V - prev.V
		}
		prev = pt
	}
	return total
}

// target identifies the scrape target a series came from.
func target(s *model.SampleStream) string {
	return string(s.Metric["job"]) + "\x00" + string(s.Metric["instance"])
}

// Seen returns, per series of request_count with app_name appName, how much
// Prometheus saw it grow since since, from the raw samples (exporter
// restarts and drops count as resets, see Increase).
func (p *Prometheus) Seen(ctx context.Context, appName string, since time.Time) (Totals, error) {
	now := time.Now()
	window := fmt.Sprintf("%ds", int(math.Ceil(now.Sub(since).Seconds()+Lookback.Seconds())))
	counts, err := p.matrix(ctx, fmt.Sprintf("%s{app_name=%q}[%s]", statsd.RequestCount, appName, window), now)
	if err != nil {
		return nil, err
	}
	// The exporter's own start time, scraped with every request_count
	// sample, tells a restart apart from a counter that only grew.
	starts, err := p.matrix(ctx, fmt.Sprintf("process_start_time_seconds[%s]", window), now)
	if err != nil {
		return nil, err
	}
	epochs := map[string]map[int64]float64{}
	for _, s := range starts {
		m := map[int64]float64{}
		for _, v := range s.Values {
			m[int64(v.Timestamp)] = float64(v.Value)
		}
		epochs[target(s)] = m
	}
	seen := map[Key]float64{}
	for _, s := range counts {
		status, err := strconv.Atoi(string(s.Metric["http_status"]))
		if err != nil {
			return nil, fmt.Errorf("verify: series %v: http_status not a number", s.Metric)
		}
		k := Key{Method: string(s.Metric["method"]), Endpoint: string(s.Metric["endpoint"]), Status: status}
		pts := make([]Point, 0, len(s.Values))
		ep := epochs[target(s)]
		for _, v := range s.Values {
			ms := int64(v.Timestamp) // model.Time is in milliseconds
			pts = append(pts, Point{T: time.UnixMilli(ms), V: float64(v.Value), Epoch: ep[ms]})
		}
		sort.Slice(pts, func(i, j int) bool { return pts[i].T.Before(pts[j].T) })
		seen[k] += Increase(pts, since)
	}
	out := Totals{}
	for k, v := range seen {
		out[k] = count(v)
	}
	return out, nil
}

// matrix runs an instant query whose result is a matrix (a range selector):
// the raw samples, no evaluation.
func (p *Prometheus) matrix(ctx context.Context, query string, at time.Time) (model.Matrix, error) {
	a, err := p.api()
	if err != nil {
		return nil, err
	}
	v, _, err := a.Query(ctx, query, at)
	if err != nil {
		return nil, fmt.Errorf("verify: query %s at %s: %w", query, p.URL, err)
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("verify: query %s: result is a %s, want a matrix", query, v.Type())
	}
	return m, nil
}
