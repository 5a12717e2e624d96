package forkwatch

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/forkwatch/forkwatch/worker"
)

// accessLog is a worker's access log and the file it writes.
type accessLog struct {
	*worker.AccessLog
	file   *os.File // nil for standard output
	warned bool
}

// openAccessLog opens -access-log for this worker: nil when off, stdout
// for "-", else the file in append mode (created 0644), which every worker
// appends whole lines to.
func openAccessLog(dest string, stdout io.Writer) (*accessLog, error) {
	switch dest {
	case "":
		return nil, nil
	case "-":
		return &accessLog{AccessLog: worker.NewAccessLog(stdout, 0)}, nil
	}
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("-access-log: %w", err)
	}
	return &accessLog{AccessLog: worker.NewAccessLog(f, 0), file: f}, nil
}

// warnDropped logs, once, that lines are being dropped; called from the
// worker's report loop. Nil (off) does nothing.
func (a *accessLog) warnDropped(log *slog.Logger) {
	if a == nil || a.warned {
		return
	}
	if n := a.Dropped(); n > 0 {
		a.warned = true
		log.Warn("access log: lines dropped because its writer cannot keep up; serving is not slowed, the total is logged at exit", "dropped", n)
	}
}

// close writes the buffered lines (after the server's shutdown) and says
// what was lost.
func (a *accessLog) close(log *slog.Logger) {
	_ = a.AccessLog.Close()
	if a.file != nil {
		if err := a.file.Close(); err != nil {
			log.Warn("access log", "err", err)
		}
	}
	if d, e := a.Dropped(), a.Errors(); d > 0 || e > 0 {
		log.Warn("access log lines lost", "dropped", d, "write_errors", e, "written", a.Written())
	}
}
