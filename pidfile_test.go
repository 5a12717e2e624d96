package forkwatch

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPIDFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "webapp.pid")
	if err := os.WriteFile(path, []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writePIDFile(path, 4242); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "4242\n" {
		t.Fatalf("pidfile holds %q, %v; want \"4242\\n\"", b, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("pidfile mode %v, %v; want 0644", fi.Mode(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}

	// Another supervisor took the file over: ours is not removed.
	if err := writePIDFile(path, 777); err != nil {
		t.Fatal(err)
	}
	if removed, err := removePIDFile(path, 4242); removed || err != nil {
		t.Errorf("removed another process's pidfile: %v, %v", removed, err)
	}
	if removed, err := removePIDFile(path, 777); !removed || err != nil {
		t.Errorf("own pidfile not removed: %v, %v", removed, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("pidfile still there: %v", err)
	}
	if removed, err := removePIDFile(path, 777); removed || err != nil {
		t.Errorf("missing pidfile: %v, %v", removed, err)
	}
	if err := writePIDFile(filepath.Join(dir, "no", "such", "dir.pid"), 1); err == nil {
		t.Error("pidfile in a missing directory: no error")
	}
}

// TestPIDFileLifetime: the supervisor writes the pidfile before the pool
// starts and removes it when it returns, here after a boot that failed.
func TestPIDFileLifetime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.pid")
	o := DefaultOptions()
	o.PIDFile = path
	o.NoMetrics = true
	o.Listen = "256.0.0.1:1" // cannot bind: supervise returns at once
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	if err := supervise(&App{Name: "test"}, &o, log); err == nil {
		t.Fatal("supervise on an unusable address: no error")
	}
	if want := fmt.Sprintf("msg=\"pidfile written\" path=%s pid=%d", path, os.Getpid()); !strings.Contains(logged.String(), want) {
		t.Errorf("log %q does not say %q", logged.String(), want)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("pidfile left after supervise returned: %v", err)
	}
}
