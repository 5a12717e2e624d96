package forkwatch

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/forkwatch/forkwatch/supervisor"
)

// activatedListener returns the socket systemd passed (socket activation,
// deploy/systemd/forkwatch.socket), to serve instead of binding -listen, or
// nil when this process was not socket-activated.
func activatedListener(log *slog.Logger) (*os.File, error) {
	files, err := supervisor.Listeners()
	if err != nil {
		return nil, err
	}
	switch len(files) {
	case 0:
		return nil, nil
	case 1:
		log.Info("socket activation: serving the socket systemd passed; -listen is not bound")
		return files[0], nil
	}
	for _, f := range files {
		f.Close()
	}
	return nil, fmt.Errorf("socket activation: systemd passed %d sockets; forkwatch serves one (one ListenStream= in the .socket unit)", len(files))
}

// notifyHooks tell systemd (Type=notify, deploy/systemd/forkwatch.service)
// about the pool: READY=1 once every worker is ready, RELOADING=1 and
// READY=1 around a reload (SIGHUP), STOPPING=1 when the pool stops. The
// new supervisor of an upgrade (SIGUSR2, upgraded) adds MAINPID=<its PID>
// to its READY=1, before the old one leaves; the old one sends no
// STOPPING=1 then (the supervisor does not call Stopping after a
// handover). With no NOTIFY_SOCKET, notify is nil and the calls do nothing.
func notifyHooks(notify *supervisor.Notifier, upgraded bool, log *slog.Logger) supervisor.PoolHooks {
	if notify == nil {
		return supervisor.PoolHooks{}
	}
	send := func(state string) {
		if err := notify.Notify(state); err != nil {
			log.Warn("systemd notification failed", "state", state, "err", err)
		}
	}
	ready := "READY=1"
	if upgraded {
		// systemd takes a notification from a process other than the
		// main one only with NotifyAccess=all.
		ready += "\nMAINPID=" + strconv.Itoa(os.Getpid())
	}
	return supervisor.PoolHooks{
		Serving:   func(int) { send(ready) },
		Reloading: func() { send(supervisor.Reloading()) },
		// Aborted or not, the pool serves (the old workers stay).
		Reloaded: func(error) { send("READY=1") },
		Stopping: func() { send("STOPPING=1") },
	}
}
