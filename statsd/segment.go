package statsd

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A Segment holds one worker's metrics that are not sent yet, in shared
// memory that outlives the worker: the supervisor creates it (NewSegment),
// hands its file to the worker like the listening socket, the worker's
// Client records into it (Config.Segment) and sends from it, and when the
// worker dies without sending everything (SIGKILL by the OOM killer or a
// hang kill), the supervisor sends the rest (Client.SendRemainder).
//
// Layout, every word a uint64 read and written atomically:
//
//	header   magic, version, series used, ring capacity, ring written,
//	         ring sent, samples dropped, reserved
//	series   maxSeries slots: key length (0: free), 15 words of key text
//	         (method \x00 endpoint \x00 status), served count, sent count
//	ring     ringCap latency samples: (series slot + 1) << 40 | microseconds;
//	         0 is an empty entry (reserved by a writer, not stored yet)
//
// A series' served count only grows; its sent count is the watermark the
// sender advances after a send succeeded, so served - sent is what is left.
// Ring entries between "ring sent" and "ring written" are left to send.
type Segment struct {
	file  *os.File
	mem   []byte
	words []uint64

	mu       sync.Mutex           // serialises adding series (writer side)
	keys     sync.Map             // requestKey -> slot (writer side cache)
	tagCache map[int]*requestTags // slot -> tags (sender side, under Client.sendMu)
}

const (
	segMagic   = 0x666b77736567_01 // "fkwseg" v1
	segVersion = 1
	maxSeries  = 1024
	keyWords   = 15
	slotWords  = 1 + keyWords + 2
	ringCap    = 1 << 16
	headerLen  = 8

	hMagic, hVersion, hSeries, hRingCap, hWritten, hSent, hDropped = 0, 1, 2, 3, 4, 5, 6

	seriesOff = headerLen
	ringOff   = seriesOff + maxSeries*slotWords
	segWords  = ringOff + ringCap
	segBytes  = segWords * 8

	// microsBits holds a sample's whole microseconds (12 days).
	microsBits = 40
)

// ErrSegmentFull is returned when every series slot is taken.
var ErrSegmentFull = errors.New("statsd: segment series table full")

// NewSegment creates a segment in anonymous shared memory (memfd).
func NewSegment() (*Segment, error) {
	fd, err := unix.MemfdCreate("forkwatch-metrics", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("statsd: segment: memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "forkwatch-metrics")
	if err := f.Truncate(segBytes); err != nil {
		f.Close()
		return nil, fmt.Errorf("statsd: segment: %w", err)
	}
	s, err := mapSegment(f)
	if err != nil {
		return nil, err
	}
	atomic.StoreUint64(&s.words[hVersion], segVersion)
	atomic.StoreUint64(&s.words[hRingCap], ringCap)
	atomic.StoreUint64(&s.words[hMagic], segMagic)
	return s, nil
}

// OpenSegment maps a segment created by NewSegment in another process.
func OpenSegment(f *os.File) (*Segment, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("statsd: segment: %w", err)
	}
	if st.Size() != segBytes {
		return nil, fmt.Errorf("statsd: segment: %d bytes, want %d (another forkwatch version?)", st.Size(), segBytes)
	}
	s, err := mapSegment(f)
	if err != nil {
		return nil, err
	}
	if atomic.LoadUint64(&s.words[hMagic]) != segMagic || atomic.LoadUint64(&s.words[hVersion]) != segVersion {
		s.Close()
		return nil, errors.New("statsd: segment: bad magic or version (another forkwatch version?)")
	}
	return s, nil
}

func mapSegment(f *os.File) (*Segment, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, segBytes, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("statsd: segment: mmap: %w", err)
	}
	words := unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), segWords)
	return &Segment{file: f, mem: mem, words: words}, nil
}

// File is the segment's file, to pass to the worker.
func (s *Segment) File() *os.File { return s.file }

// Close unmaps the segment and closes its file.
func (s *Segment) Close() error {
	err := unix.Munmap(s.mem)
	if cerr := s.file.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *Segment) slot(i int) []uint64 {
	off := seriesOff + i*slotWords
	return s.words[off : off+slotWords]
}

// series returns key's slot, adding it if new. Only the worker adds.
func (s *Segment) series(k requestKey) (int, error) {
	if v, ok := s.keys.Load(k); ok {
		return v.(int), nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.keys.Load(k); ok {
		return v.(int), nil
	}
	n := int(atomic.LoadUint64(&s.words[hSeries]))
	if n >= maxSeries {
		return 0, ErrSegmentFull
	}
	text := SanitizeTagValue(k.method) + "\x00" + SanitizeTagValue(k.endpoint) + "\x00" + strconv.Itoa(k.status)
	if len(text) > keyWords*8 {
		text = text[:keyWords*8] // tag values are short; a cut one is still one series
	}
	sl := s.slot(n)
	var buf [keyWords * 8]byte
	copy(buf[:], text)
	for i := range keyWords {
		atomic.StoreUint64(&sl[1+i], *(*uint64)(unsafe.Pointer(&buf[i*8])))
	}
	atomic.StoreUint64(&sl[0], uint64(len(text))) // the key is complete
	atomic.StoreUint64(&s.words[hSeries], uint64(n+1))
	s.keys.Store(k, n)
	return n, nil
}

// key reads slot i's series key; ok is false for a slot not complete.
func (s *Segment) key(i int) (method, endpoint string, status int, ok bool) {
	sl := s.slot(i)
	n := atomic.LoadUint64(&sl[0])
	if n == 0 || n > keyWords*8 {
		return "", "", 0, false
	}
	var buf [keyWords * 8]byte
	for j := range keyWords {
		*(*uint64)(unsafe.Pointer(&buf[j*8])) = atomic.LoadUint64(&sl[1+j])
	}
	parts := strings.SplitN(string(buf[:n]), "\x00", 3)
	if len(parts) != 3 {
		return "", "", 0, false
	}
	st, _ := strconv.Atoi(parts[2])
	return parts[0], parts[1], st, true
}

// record counts one request; it never blocks on anything but a first-seen
// series' slot. ok is false when the sample could not be kept (ring full:
// counted in dropped) and tells the caller to flush early when half full.
func (s *Segment) record(k requestKey, micros uint64) (flushSoon bool, err error) {
	i, err := s.series(k)
	if err != nil {
		return false, err
	}
	atomic.AddUint64(&s.slot(i)[1+keyWords], 1)
	micros = min(micros, 1<<microsBits-1)
	for {
		w := atomic.LoadUint64(&s.words[hWritten])
		sent := atomic.LoadUint64(&s.words[hSent])
		if w-sent >= ringCap {
			// The ring is full: the sender is far behind (the exporter
			// unreachable for long). The count above is kept; this latency
			// sample is dropped, counted, and visible in Totals.
			atomic.AddUint64(&s.words[hDropped], 1)
			return true, nil
		}
		if atomic.CompareAndSwapUint64(&s.words[hWritten], w, w+1) {
			atomic.StoreUint64(&s.words[ringOff+int(w%ringCap)], uint64(i+1)<<microsBits|micros)
			return w-sent >= ringCap/2, nil
		}
	}
}

// SeriesTotal is one series' served count in a Segment.
type SeriesTotal struct {
	Method, Endpoint string
	Status           int
	Served, Sent     uint64
}

// Totals returns every series' cumulative served and sent counts, and the
// latency samples dropped because the ring was full.
func (s *Segment) Totals() (series []SeriesTotal, droppedSamples uint64) {
	n := int(atomic.LoadUint64(&s.words[hSeries]))
	for i := range n {
		m, e, st, ok := s.key(i)
		if !ok {
			continue
		}
		sl := s.slot(i)
		series = append(series, SeriesTotal{Method: m, Endpoint: e, Status: st,
			Served: atomic.LoadUint64(&sl[1+keyWords]), Sent: atomic.LoadUint64(&sl[2+keyWords])})
	}
	return series, atomic.LoadUint64(&s.words[hDropped])
}

// pending is what a Segment holds that is not sent yet.
type pending struct {
	counts  []countDelta
	samples []sample
	upto    uint64 // ring position after the last sample taken
}

type countDelta struct {
	slot        int
	delta, mark uint64 // mark: the served count the delta reaches
}

type sample struct {
	slot   int
	micros uint64
}

// take reads what is left to send without changing anything. A live
// worker's reserved-but-unstored entry stops the read (the next flush gets
// it); with final set (the worker is gone) such entries are skipped: they
// never will be stored.
func (s *Segment) take(final bool) pending {
	var p pending
	n := int(atomic.LoadUint64(&s.words[hSeries]))
	for i := range n {
		sl := s.slot(i)
		served, sent := atomic.LoadUint64(&sl[1+keyWords]), atomic.LoadUint64(&sl[2+keyWords])
		if served > sent {
			p.counts = append(p.counts, countDelta{slot: i, delta: served - sent, mark: served})
		}
	}
	from := atomic.LoadUint64(&s.words[hSent])
	to := atomic.LoadUint64(&s.words[hWritten])
	if to-from > ringCap {
		to = from + ringCap
	}
	p.upto = from
	for w := from; w < to; w++ {
		e := atomic.LoadUint64(&s.words[ringOff+int(w%ringCap)])
		if e == 0 {
			if final {
				p.upto = w + 1
				continue
			}
			break
		}
		p.samples = append(p.samples, sample{slot: int(e>>microsBits) - 1, micros: e & (1<<microsBits - 1)})
		p.upto = w + 1
	}
	return p
}

// commit marks p as sent: ring entries are cleared before the watermark
// moves, so a writer that wraps around finds them empty.
func (s *Segment) commit(p pending) {
	for _, c := range p.counts {
		atomic.StoreUint64(&s.slot(c.slot)[2+keyWords], c.mark)
	}
	from := atomic.LoadUint64(&s.words[hSent])
	for w := from; w < p.upto; w++ {
		atomic.StoreUint64(&s.words[ringOff+int(w%ringCap)], 0)
	}
	atomic.StoreUint64(&s.words[hSent], p.upto)
}
