package worker

import (
	"sync"
	"time"
)

// shards spreads in-flight bookkeeping over several locks so that
// concurrent requests rarely contend.
const shards = 16

// inflight tracks the requests in progress so Progress can name the oldest:
// a handler that blocks forever shows up as a growing age, which a goroutine
// that merely beats on a timer could never show.
type inflight struct {
	shards [shards]shard
}

type shard struct {
	mu   sync.Mutex
	jobs map[uint64]job
}

type job struct {
	start    time.Time
	endpoint string
}

func (f *inflight) init() {
	for i := range f.shards {
		f.shards[i].jobs = make(map[uint64]job)
	}
}

func (f *inflight) begin(id uint64, endpoint string, start time.Time) *shard {
	s := &f.shards[id%shards]
	s.mu.Lock()
	s.jobs[id] = job{start: start, endpoint: endpoint}
	s.mu.Unlock()
	return s
}

func (s *shard) end(id uint64) {
	s.mu.Lock()
	delete(s.jobs, id)
	s.mu.Unlock()
}

// oldest returns the age and endpoint of the oldest request in progress.
func (f *inflight) oldest() (time.Duration, string) {
	var first job
	for i := range f.shards {
		s := &f.shards[i]
		s.mu.Lock()
		for _, j := range s.jobs {
			if first.start.IsZero() || j.start.Before(first.start) {
				first = j
			}
		}
		s.mu.Unlock()
	}
	if first.start.IsZero() {
		return 0, ""
	}
	return time.Since(first.start), first.endpoint
}
