package audit

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
)

// Lookback is how far before the pool's start the raw samples are read, to
// find each series' value just before the pool served its first request. It
// must exceed Prometheus's scrape interval.
const Lookback = 5 * time.Minute

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
		p := &points[i]
		if !p.T.After(since) {
			prev = p
			continue
		}
		switch {
		case prev == nil:
			total += p.V
		case p.V < prev.V, p.Epoch != 0 && prev.Epoch != 0 && p.Epoch != prev.Epoch:
			total += p.V
		default:
			total += p.V - prev.V
		}
		prev = p
	}
	return total
}

// Prometheus reads raw samples from a Prometheus server's HTTP API.
type Prometheus struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:9090.
	URL string
	// Client does the requests. Default: a client with a 30s timeout.
	Client *http.Client
}

// target identifies the scrape target a series came from.
func target(s *model.SampleStream) string {
	return string(s.Metric["job"]) + "\x00" + string(s.Metric["instance"])
}

// Seen returns, per series of request_count with app_name appName, how much
// Prometheus saw it grow since the pool started.
func (p *Prometheus) Seen(ctx context.Context, appName string, since time.Time) (map[Key]float64, error) {
	now := time.Now()
	window := fmt.Sprintf("%ds", int(math.Ceil(now.Sub(since).Seconds()+Lookback.Seconds())))
	counts, err := p.raw(ctx, fmt.Sprintf("request_count{app_name=%q}[%s]", appName, window), now)
	if err != nil {
		return nil, err
	}
	// The exporter's own start time, scraped with every request_count
	// sample, tells a restart apart from a counter that only grew.
	starts, err := p.raw(ctx, fmt.Sprintf("process_start_time_seconds[%s]", window), now)
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
			return nil, fmt.Errorf("audit: series %v: http_status not a number", s.Metric)
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
	return seen, nil
}

// raw runs an instant query whose result is a matrix (a range selector):
// the raw samples, no evaluation.
func (p *Prometheus) raw(ctx context.Context, query string, at time.Time) (model.Matrix, error) {
	client := p.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	c, err := api.NewClient(api.Config{Address: p.URL, Client: client})
	if err != nil {
		return nil, fmt.Errorf("audit: query Prometheus: %w", err)
	}
	v, _, err := promv1.NewAPI(c).Query(ctx, query, at)
	if err != nil {
		return nil, fmt.Errorf("audit: query %s at %s: %w", query, p.URL, err)
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("audit: query %s: result is a %s, want a matrix", query, v.Type())
	}
	return m, nil
}
