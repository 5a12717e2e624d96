// Package supervisor runs a pool of worker processes that serve one listening
// socket, the way a prefork server's master does.
//
// The supervisor re-executes its own binary (or Options.Path) once per worker
// slot. In the default mode it binds the listener once and every worker
// inherits the same socket, so the kernel hands each new connection to
// whichever worker accepts first; with Options.ReusePort each worker binds its
// own SO_REUSEPORT socket instead.
//
// It knows nothing about HTTP or metrics. A worker talks to its supervisor
// over a pipe (see Child): it says when it is ready, reports its progress
// (requests finished, age and label of the oldest request in progress), and
// may send small opaque messages that the supervisor hands to Hooks.Message.
// The supervisor tells a worker to stop by closing the worker's control pipe;
// a worker whose supervisor dies sees the same end-of-file and stops too.
// NewChild marks the inherited descriptors close-on-exec, so a process a
// worker starts holds neither pipe nor the socket; the supervisor learns of a
// worker's exit from the process itself, not from its pipe.
//
// Guarantees:
//   - Run returns only after every worker it started has exited and been
//     reaped; Hooks.Exit is called only then.
//   - At first boot Run waits until every worker is ready (a handshake, not a
//     sleep). If no worker ever becomes ready, Run stops and returns the
//     worker's own error text.
//   - A worker that exits unexpectedly is replaced at once; repeated crashes
//     in one slot, and failures to start a worker at all (a deleted binary,
//     a failing Hooks.Files), back off exponentially from Options.BackoffMin
//     up to Options.BackoffMax. A worker that served for a few seconds
//     resets the count. A pool that has served once never gives up.
//   - A stop (SIGTERM, SIGINT or cancelling Run's context) first closes the
//     supervisor's copy of the socket, so that new clients are refused
//     rather than queued for no one, then asks every worker to finish its
//     in-flight requests within Options.Grace and exit. Whatever still runs
//     Grace plus KillMargin (its final flush) after is killed, and the log
//     says so. Run then returns nil.
//   - A second stop signal at least a second after the first kills the
//     workers at once: press Ctrl-C again after a second to kill at once.
//     Signals closer together are the same stop (a terminal's Ctrl-C reaches
//     the whole process group, and a parent often forwards a SIGTERM too).
//   - SIGHUP replaces the workers one slot at a time with fresh processes of
//     the binary now on disk; each new worker is ready before the old one is
//     told to drain. A new worker that fails to start aborts the reload and
//     the old workers keep serving. A SIGHUP during a reload runs one more
//     full reload after it, so once the last SIGHUP settles every worker
//     runs the binary that was on disk at that SIGHUP.
//   - A worker whose oldest request has been in progress longer than
//     Options.HangTimeout, or that has not reported for
//     Options.ReportTimeout, is killed (SIGKILL) and replaced. Its other
//     in-flight requests are lost with it. Zero timeouts mean never.
//   - With Options.MaxRequests a worker is replaced (new one ready first)
//     after that many requests plus a random jitter, like gunicorn's
//     --max-requests.
//   - SIGTTIN adds a worker slot, SIGTTOU removes one (never the last).
//   - SIGUSR2 upgrades the supervisor itself (Upgraded describes the
//     handshake): the binary at Options.Path starts as a new supervisor, in
//     a process group of its own, with Args, Options.UpgradeEnv and the
//     listening socket. It starts its own pool on the socket, and once every
//     worker of it is ready (after its PoolHooks.Serving) it says so over a
//     pipe; only then does this supervisor stop its workers as for a stop
//     (PoolHooks.Upgraded instead of Stopping) and Run return nil. The
//     socket stays open all along, so no client is refused. A new
//     supervisor that exits, or is not ready within ReadyTimeout plus
//     KillMargin, aborts the upgrade: this one keeps serving and logs the
//     new one's error, and what is left of the new one's process group is
//     sent SIGTERM, then SIGKILL Grace plus KillMargin later. A SIGUSR2
//     during an upgrade is ignored; with ReusePort there is nothing to
//     hand over and it is refused.
//   - While Run runs, the supervisor survives the loss of its log reader:
//     a write to a closed stdout or stderr fails instead of raising a fatal
//     SIGPIPE.
//
// Signals to the supervisor:
//
//	SIGTERM, SIGINT  stop gracefully; again, a second or more later: kill now
//	SIGHUP           reload: replace every worker, one slot at a time
//	SIGTTIN          add a worker slot
//	SIGTTOU          remove a worker slot (never the last)
//	SIGUSR2          upgrade: a new supervisor takes over, then this one stops
//
// A worker ignores SIGINT, SIGHUP, SIGTTIN, SIGTTOU and SIGUSR2 (they reach
// the whole process group; acting on them is the supervisor's call) and
// takes SIGTERM as a request to stop, like the closing of its control pipe.
//
// After an upgrade the supervisor runs in a process group of its own, not
// the terminal's: stop it by its PID (a pid file, systemd's MAINPID), not
// with Ctrl-C.
//
// Hooks are called from the supervisor's single event goroutine, in the order
// the events happened; they must not block.
package supervisor
