package supervisor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// envTestFailIf names a file whose existence makes a test worker fail at
// start.
const envTestFailIf = "FORKWATCH_TEST_FAIL_IF"

// TestMain runs the test binary as a worker when a test's supervisor
// started it: ready at once, then idle until told to stop.
func TestMain(m *testing.M) {
	if os.Getenv(childMode) == "" && IsChild() {
		os.Exit(testWorker())
	}
	os.Exit(m.Run())
}

func testWorker() int {
	c, err := NewChild()
	if err != nil {
		return 3
	}
	if f := os.Getenv(envTestFailIf); f != "" {
		if _, err := os.Stat(f); err == nil {
			_ = c.Fatal(errors.New("told to fail"))
			return 1
		}
	}
	if _, err := c.Listener(); err != nil {
		_ = c.Fatal(err)
		return 3
	}
	if err := c.Ready(); err != nil {
		return 3
	}
	<-c.Stopping()
	return 0
}

// TestPoolHooks drives a supervisor of test-binary workers through boot,
// reload, a reload whose new worker fails, scale and stop, and checks the
// pool hooks' order.
func TestPoolHooks(t *testing.T) {
	var mu sync.Mutex
	var events []string
	add := func(e string) { mu.Lock(); events = append(events, e); mu.Unlock() }
	seen := func() string { mu.Lock(); defer mu.Unlock(); return strings.Join(events, " ") }
	var beats sync.WaitGroup
	beats.Add(1)
	var beatOnce sync.Once
	failIf := filepath.Join(t.TempDir(), "fail")
	s, err := New(Options{
		Addr:    "127.0.0.1:0",
		Workers: 2,
		Path:    os.Args[0],
		Args:    []string{"-test.run=^$"},
		Env:     append(os.Environ(), envTestFailIf+"="+failIf),
		Stdout:  io.Discard, Stderr: io.Discard,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Pool: PoolHooks{
			Serving:   func(n int) { add("serving:" + strconv.Itoa(n)) },
			Reloading: func() { add("reloading") },
			Reloaded: func(err error) {
				if err != nil {
					add("reload-failed")
					return
				}
				add("reloaded")
			},
			Stopping: func() { add("stopping") },
			Scaled:   func(n int) { add("scaled:" + strconv.Itoa(n)) },
			Alive:    func(time.Time) { beatOnce.Do(beats.Done) },
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	wait := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.HasSuffix(seen(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("pool hooks %q, want them to end with %q", seen(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait("serving:2")
	beats.Wait()
	s.Reload()
	wait("reloading reloaded")
	if err := os.WriteFile(failIf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s.Reload()
	wait("reloading reloaded reloading reload-failed")
	if err := os.Remove(failIf); err != nil {
		t.Fatal(err)
	}
	s.Scale(1)
	wait("scaled:3")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, want := seen(), "serving:2 reloading reloaded reloading reload-failed scaled:3 stopping"; got != want {
		t.Errorf("pool hooks %q, want %q", got, want)
	}
}
