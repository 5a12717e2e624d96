package supervisor

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// The file descriptors a worker inherits, after stdin, stdout and stderr.
const (
	reportFD   = 3 // worker -> supervisor frames
	controlFD  = 4 // supervisor -> worker; end-of-file means "stop"
	listenerFD = 5 // the shared listening socket (inherited mode only)
)

// firstExtraFD is the descriptor of the first file from Hooks.Files: right
// after the supervisor's own, which include the listener unless each worker
// binds its own.
func firstExtraFD(reusePort bool) int {
	if reusePort {
		return listenerFD
	}
	return listenerFD + 1
}

// Environment variables that mark a process as a worker and configure it.
// They are named FORKWATCH_WORKER_* so that none is a command's flag
// variable (FORKWATCH_MAX_REQUESTS is -max-requests).
const (
	envWorkerID    = "FORKWATCH_WORKER_ID"
	envReusePort   = "FORKWATCH_REUSEPORT_ADDR"
	envMaxRequests = "FORKWATCH_WORKER_MAX_REQUESTS" // this worker's recycle limit
	envFiles       = "FORKWATCH_WORKER_FILES"        // how many files Hooks.Files passed
)

// Frame types on the report pipe. A frame is one type byte, a big-endian
// uint32 payload length and the payload.
const (
	frameReady   byte = 'R'
	frameStatus  byte = 'S'
	frameMessage byte = 'M'
	frameFatal   byte = 'F'
)

// maxFrame bounds a frame so a confused worker cannot make the supervisor
// allocate without limit.
const maxFrame = 1 << 20

// ErrFrameTooLarge is returned when a frame exceeds the 1 MiB limit.
var ErrFrameTooLarge = errors.New("supervisor: frame too large")

// Status is what a worker reports about its progress.
type Status struct {
	// Handled counts the requests the worker has finished since it started.
	Handled uint64
	// Busy is the age of the oldest request still in progress; zero when idle.
	Busy time.Duration
	// BusyWith labels that oldest request (for a web server, its route).
	BusyWith string
}

func (s Status) encode() []byte {
	b := make([]byte, 16, 16+len(s.BusyWith))
	binary.BigEndian.PutUint64(b[0:], s.Handled)
	binary.BigEndian.PutUint64(b[8:], uint64(s.Busy))
	return append(b, s.BusyWith...)
}

func decodeStatus(b []byte) (Status, error) {
	if len(b) < 16 {
		return Status{}, fmt.Errorf("supervisor: status frame of %d bytes", len(b))
	}
	return Status{
		Handled:  binary.BigEndian.Uint64(b[0:]),
		Busy:     time.Duration(binary.BigEndian.Uint64(b[8:])),
		BusyWith: string(b[16:]),
	}, nil
}

func writeFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > maxFrame {
		return ErrFrameTooLarge
	}
	buf := make([]byte, 5+len(payload))
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[1:], uint32(len(payload)))
	copy(buf[5:], payload)
	_, err := w.Write(buf)
	return err
}

func readFrame(r *bufio.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, ErrFrameTooLarge
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	return hdr[0], payload, nil
}
