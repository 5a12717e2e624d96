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
// (jobs finished, age and label of the oldest job in progress), and may send
// small opaque messages that the supervisor hands to Hooks.Message. The
// supervisor tells a worker to stop by closing the worker's control pipe;
// a worker whose supervisor dies sees the same end-of-file and stops too.
//
// Guarantees:
//   - Run returns only after every worker it started has exited.
//   - At first boot Run waits until every worker is ready (a handshake, not a
//     sleep). If no worker ever becomes ready, Run stops and returns the
//     worker's own error text.
//   - A worker that exits unexpectedly is replaced at once; repeated crashes
//     in one slot back off exponentially up to Options.BackoffMax. A pool that
//     has served once never gives up.
//   - SIGTERM or SIGINT (or cancelling Run's context) stops every worker
//     gracefully: a worker finishes its in-flight jobs and exits; whatever is
//     still running after Options.StopTimeout is killed, and the log says so.
//     A second signal kills the workers at once. Run then returns nil.
//   - SIGHUP replaces the workers one slot at a time with fresh processes of
//     the binary now on disk; each new worker is ready before the old one is
//     told to drain. A new worker that fails to start aborts the reload and
//     the old workers keep serving.
//   - A worker whose oldest job has been in progress longer than
//     Options.HangTimeout, or that has not reported for
//     Options.ReportTimeout, is killed (SIGKILL) and replaced. Its other
//     in-flight jobs are lost with it.
//   - With Options.MaxJobs a worker is replaced (new one ready first) after
//     that many jobs plus a random jitter, like gunicorn's --max-requests.
//   - SIGTTIN adds a worker slot, SIGTTOU removes one (never the last).
//
// Hooks are called from the supervisor's single event goroutine, in the order
// the events happened; they must not block.
package supervisor
