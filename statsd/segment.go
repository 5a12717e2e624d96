package statsd

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A Segment is one worker's not-yet-sent request metrics in shared memory:
// a table of series with cumulative counts and a ring of latency samples,
// each with a sent watermark. The supervisor creates it (NewSegment) and
// hands its File to the worker, which maps it (OpenSegment) and records into
// it; the memory outlives the worker, so after the worker dies, however it
// dies, the supervisor sends what is left (Client.SendRemainder).
//
// Layout (all integers little-endian, native atomics):
//
//	header    256 bytes: magic, version, sizes, dropped and overflow
//	          counters, the used-slot count, and on their own cache lines
//	          the ring's write index and sent watermark
//	series    Series slots of 448 bytes: count, sent, status, method and
//	          endpoint (already sanitised)
//	ring      Samples uint64 entries: 0 = empty (free, or reserved and not
//	          yet written), else 1 + slot<<40 | whole microseconds
//
// Writers are the goroutines of one process (the worker); the reader is
// that worker's flush goroutine or, once it is dead, the supervisor. Every
// field another process reads is published with sync/atomic, so a reader
// never sees a torn value.
type Segment struct {
	file  *os.File
	mem   []byte
	hdr   *segHeader
	slots []segSlot
	ring  []atomic.Uint64
	mask  uint64
	half  uint64
}

// SegmentOptions size a Segment. Zero values take the defaults.
type SegmentOptions struct {
	// Series bounds the distinct (method, endpoint, status) series.
	// Default DefaultSegmentSeries. Records of further series are sent
	// from process memory and counted as overflow (see Totals).
	Series int
	// Samples bounds the latency samples waiting to be sent; rounded up to
	// a power of two. Default DefaultSegmentSamples. When it is full,
	// further samples are dropped and counted (counts never drop).
	Samples int
}

// Segment defaults: 1024 series × 448 B + 65536 samples × 8 B ≈ 1 MiB per
// worker, of which only the pages touched are ever backed by memory. At 200
// ms flushes the ring holds 5 s of a worker serving 65k requests/s, and
// twice that before a half-full ring forces an early flush.
const (
	DefaultSegmentSeries  = 1024
	DefaultSegmentSamples = 1 << 16
)

const (
	segMagic   = 0x5453544b57524f46 // "FORKWSTT" little-endian
	segVersion = 1
	segHdrSize = 256
	// keyBytes holds a sanitised method and endpoint (each <= maxTagValue).
	keyBytes = 2 * maxTagValue
	// usBits is the width of the microseconds field of a ring entry: 2^40
	// µs is 12 days; longer latencies are clamped.
	usBits = 40
	usMax  = 1<<usBits - 1
	// maxSeries keeps a slot index inside a ring entry with usBits.
	maxSeries = 1<<(64-usBits) - 2
)

// ErrSegment is wrapped by every error about a segment that does not match
// what this build writes (magic, version or sizes).
var ErrSegment = errors.New("statsd: segment mismatch")

type segHeader struct {
	magic    uint64
	version  uint32
	hdrSize  uint32
	size     uint64
	series   uint32
	slotSize uint32
	samples  uint64
	dropped  atomic.Uint64 // samples not kept: ring full
	overflow atomic.Uint64 // records of series beyond the table
	used     atomic.Uint32 // slots published; a slot's fields are set before
	_        [128 - 60]byte
	write    atomic.Uint64 // ring entries reserved
	_        [56]byte
	sent     atomic.Uint64 // ring entries sent (and cleared)
	_        [56]byte
}

type segSlot struct {
	count       atomic.Uint64
	sent        atomic.Uint64
	status      uint32
	methodLen   uint16
	endpointLen uint16
	_           [8]byte
	key         [keyBytes]byte
	_           [16]byte
}

// Compile-time checks of the layout the header records.
var (
	_ [segHdrSize - unsafe.Sizeof(segHeader{})]byte
	_ [unsafe.Sizeof(segHeader{}) - segHdrSize]byte
	_ [448 - unsafe.Sizeof(segSlot{})]byte
	_ [unsafe.Sizeof(segSlot{}) - 448]byte
)

func (o *SegmentOptions) setDefaults() error {
	if o.Series == 0 {
		o.Series = DefaultSegmentSeries
	}
	if o.Samples == 0 {
		o.Samples = DefaultSegmentSamples
	}
	if o.Series < 1 || o.Series > maxSeries {
		return fmt.Errorf("statsd: segment series %d: want 1 to %d", o.Series, maxSeries)
	}
	if o.Samples < 2 || o.Samples > 1<<30 {
		return fmt.Errorf("statsd: segment samples %d: want 2 to %d", o.Samples, 1<<30)
	}
	o.Samples = 1 << bits.Len(uint(o.Samples-1))
	return nil
}

func segSize(series, samples int) int {
	return segHdrSize + series*int(unsafe.Sizeof(segSlot{})) + samples*8
}

// NewSegment creates a segment in a sealed memfd (its size cannot change, so
// a mapping can never fault) and maps it. The supervisor calls it once per
// worker process, before starting it.
func NewSegment(opts SegmentOptions) (*Segment, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	size := segSize(opts.Series, opts.Samples)
	fd, err := unix.MemfdCreate("forkwatch-statsd", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("statsd: segment memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "forkwatch-statsd-segment")
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		f.Close()
		return nil, fmt.Errorf("statsd: segment size: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS,
		unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return nil, fmt.Errorf("statsd: segment seal: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("statsd: segment mmap: %w", err)
	}
	h := (*segHeader)(unsafe.Pointer(&mem[0]))
	h.version = segVersion
	h.hdrSize = segHdrSize
	h.size = uint64(size)
	h.series = uint32(opts.Series)
	h.slotSize = uint32(unsafe.Sizeof(segSlot{}))
	h.samples = uint64(opts.Samples)
	atomic.StoreUint64(&h.magic, segMagic) // last: a reader sees all or a bad magic
	s, err := attach(f, mem)
	if err != nil {
		unix.Munmap(mem)
		f.Close()
		return nil, err
	}
	return s, nil
}

// newPrivateSegment is a segment in this process's memory, for a Client
// given none: Record works the same, only nothing outlives the process.
func newPrivateSegment() *Segment {
	opts := SegmentOptions{}
	_ = opts.setDefaults()
	size := segSize(opts.Series, opts.Samples)
	mem := make([]uint64, size/8) // 8-byte aligned for the atomics
	b := unsafe.Slice((*byte)(unsafe.Pointer(&mem[0])), size)
	h := (*segHeader)(unsafe.Pointer(&b[0]))
	*h = segHeader{magic: segMagic, version: segVersion, hdrSize: segHdrSize, size: uint64(size),
		series: uint32(opts.Series), slotSize: uint32(unsafe.Sizeof(segSlot{})), samples: uint64(opts.Samples)}
	s, err := attach(nil, b)
	if err != nil {
		panic(err) // the layout is this file's own
	}
	return s
}

// OpenSegment maps the segment in f, as received from the supervisor, and
// takes ownership of f. It fails with an error wrapping ErrSegment when f was
// not written by a NewSegment of this version.
func OpenSegment(f *os.File) (*Segment, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("statsd: segment stat: %w", err)
	}
	if st.Size < segHdrSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the header", ErrSegment, st.Size)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("statsd: segment mmap: %w", err)
	}
	s, err := attach(f, mem)
	if err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	return s, nil
}

// attach checks the header of mem and builds the views on it.
func attach(f *os.File, mem []byte) (*Segment, error) {
	h := (*segHeader)(unsafe.Pointer(&mem[0]))
	switch {
	case atomic.LoadUint64(&h.magic) != segMagic:
		return nil, fmt.Errorf("%w: bad magic %#x", ErrSegment, atomic.LoadUint64(&h.magic))
	case h.version != segVersion:
		return nil, fmt.Errorf("%w: version %d, this build reads %d", ErrSegment, h.version, segVersion)
	case h.hdrSize != segHdrSize || h.slotSize != uint32(unsafe.Sizeof(segSlot{})):
		return nil, fmt.Errorf("%w: header %d/slot %d bytes, this build has %d/%d", ErrSegment,
			h.hdrSize, h.slotSize, segHdrSize, unsafe.Sizeof(segSlot{}))
	case h.series < 1 || h.series > maxSeries || h.samples < 2 || h.samples&(h.samples-1) != 0:
		return nil, fmt.Errorf("%w: %d series, %d samples", ErrSegment, h.series, h.samples)
	case h.size != uint64(len(mem)) || h.size != uint64(segSize(int(h.series), int(h.samples))):
		return nil, fmt.Errorf("%w: size %d in header, %d mapped", ErrSegment, h.size, len(mem))
	}
	slotOff := segHdrSize
	ringOff := slotOff + int(h.series)*int(unsafe.Sizeof(segSlot{}))
	return &Segment{
		file:  f,
		mem:   mem,
		hdr:   h,
		slots: unsafe.Slice((*segSlot)(unsafe.Pointer(&mem[slotOff])), h.series),
		ring:  unsafe.Slice((*atomic.Uint64)(unsafe.Pointer(&mem[ringOff])), h.samples),
		mask:  h.samples - 1,
		half:  h.samples / 2,
	}, nil
}

// File is the memfd to hand to the worker (e.g. in exec.Cmd.ExtraFiles).
// It is nil for a Client's private segment.
func (s *Segment) File() *os.File { return s.file }

// Close unmaps the segment and closes its file. Nothing may record into or
// read from it afterwards: close the Client using it first.
func (s *Segment) Close() error {
	var err error
	if s.file != nil {
		err = unix.Munmap(s.mem)
		if cerr := s.file.Close(); err == nil {
			err = cerr
		}
	}
	s.mem, s.slots, s.ring = nil, nil, nil
	return err
}

// Series names one request_count series.
type Series struct {
	Method, Endpoint string
	Status           int
}

// SeriesCount is a count of one series.
type SeriesCount struct {
	Series
	Count uint64
}

// Totals is what a segment has recorded since it was created.
type Totals struct {
	// Served is the cumulative count of requests per series, sent or not:
	// the worker's share of the audit ledger.
	Served []SeriesCount
	// DroppedSamples counts latency samples not kept because the ring was
	// full (the exporter unreachable for long). Their requests are counted.
	DroppedSamples uint64
	// Overflow counts records of series beyond the table: counted and sent
	// from the worker's own memory, so not in Served and lost if the worker
	// is killed before its next flush.
	Overflow uint64
}

// Totals reads the cumulative counts. Safe from any process at any time.
func (s *Segment) Totals() Totals {
	t := Totals{DroppedSamples: s.hdr.dropped.Load(), Overflow: s.hdr.overflow.Load()}
	n := int(s.hdr.used.Load())
	for i := 0; i < n; i++ {
		t.Served = append(t.Served, SeriesCount{Series: s.series(i), Count: s.slots[i].count.Load()})
	}
	return t
}

// series reads slot i's key; i must be below the published used count.
func (s *Segment) series(i int) Series {
	sl := &s.slots[i]
	m, e := int(sl.methodLen), int(sl.endpointLen)
	return Series{Method: string(sl.key[:m]), Endpoint: string(sl.key[m : m+e]), Status: int(sl.status)}
}

// findSlot returns the slot holding the sanitised key, or claims a new one
// (-1 when the table is full). Only one goroutine of the writing process
// may call it at a time (Client.slotFor holds a mutex).
func (s *Segment) findSlot(method, endpoint string, status int) int {
	n := int(s.hdr.used.Load())
	for i := 0; i < n; i++ {
		sl := &s.slots[i]
		if int(sl.status) == status && int(sl.methodLen) == len(method) && int(sl.endpointLen) == len(endpoint) &&
			string(sl.key[:len(method)]) == method && string(sl.key[len(method):len(method)+len(endpoint)]) == endpoint {
			return i
		}
	}
	if n >= len(s.slots) || len(method)+len(endpoint) > keyBytes {
		return -1
	}
	sl := &s.slots[n]
	sl.status = uint32(status)
	sl.methodLen, sl.endpointLen = uint16(len(method)), uint16(len(endpoint))
	copy(sl.key[:], method)
	copy(sl.key[len(method):], endpoint)
	s.hdr.used.Store(uint32(n + 1)) // publishes the key written above
	return n
}

// record counts one request of slot i and queues its latency. It reports
// whether the ring just became half full (time for an early flush).
func (s *Segment) record(i int, us uint64) (halfFull bool) {
	s.slots[i].count.Add(1)
	if us > usMax {
		us = usMax
	}
	for {
		w := s.hdr.write.Load()
		pending := w - s.hdr.sent.Load()
		if pending >= uint64(len(s.ring)) {
			s.hdr.dropped.Add(1)
			return true
		}
		// Reserve by CAS, not Add: a reservation beyond a full ring would
		// leave a hole the reader can never pass.
		if s.hdr.write.CompareAndSwap(w, w+1) {
			s.ring[w&s.mask].Store(1 + uint64(i)<<usBits | us)
			return pending+1 == s.half
		}
	}
}

// pending is a snapshot of what lies between the watermarks.
type pending struct {
	counts  []uint64 // cumulative count per slot, as read
	deltas  []uint64 // counts minus sent
	samples []uint64 // ring entries (minus 1) in [sent, end)
	pos     []uint64 // ring index of each sample
	start   uint64   // ring sent watermark
	end     uint64   // ring index after the last sample taken
	holes   int      // reserved entries never written (dead writer only)
}

// snapshot reads everything not yet sent into p (reusing its slices). A
// live writer's reserved-but-unwritten entry ends the batch; with
// writerDead, such entries (the writer died between reserving and storing)
// are skipped and counted as holes.
func (s *Segment) snapshot(p *pending, writerDead bool) {
	n := int(s.hdr.used.Load())
	p.counts, p.deltas, p.samples, p.pos, p.holes = p.counts[:0], p.deltas[:0], p.samples[:0], p.pos[:0], 0
	for i := 0; i < n; i++ {
		c := s.slots[i].count.Load()
		p.counts = append(p.counts, c)
		p.deltas = append(p.deltas, c-s.slots[i].sent.Load())
	}
	p.start = s.hdr.sent.Load()
	w := s.hdr.write.Load()
	p.end = p.start
	for ; p.end < w; p.end++ {
		v := s.ring[p.end&s.mask].Load()
		if v == 0 {
			if !writerDead {
				break
			}
			p.holes++
			continue
		}
		p.samples = append(p.samples, v-1)
		p.pos = append(p.pos, p.end)
	}
}

// advanceCounts marks the counts of slots [from, to) of p sent.
func (s *Segment) advanceCounts(p *pending, from, to int) {
	for i := from; i < to; i++ {
		s.slots[i].sent.Store(p.counts[i])
	}
}

// advanceRing marks ring entries [from, to) sent: they are cleared first
// and only then the watermark moves (a writer reuses an entry only once the
// watermark is past it).
func (s *Segment) advanceRing(from, to uint64) {
	for i := from; i < to; i++ {
		s.ring[i&s.mask].Store(0)
	}
	s.hdr.sent.Store(to)
}

func sampleSlot(v uint64) int   { return int(v >> usBits) }
func sampleUS(v uint64) float64 { return float64(v&usMax) / 1e6 }
