package launch

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestRemoveStaleSocket: a socket nobody receives on is removed (the
// exporter would refuse to start on it); a live socket or any other file is
// left alone with an error.
func TestRemoveStaleSocket(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: stale, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close() // a datagram socket's path outlives it, as after a kill
	live := filepath.Join(dir, "live.sock")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: live, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		path   string
		ok     bool
		exists bool
	}{
		"missing":      {filepath.Join(dir, "none.sock"), true, false},
		"stale":        {stale, true, false},
		"live":         {live, false, true},
		"regular file": {file, false, true},
	} {
		err := removeStaleSocket(tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("%s: removeStaleSocket = %v, want ok=%v", name, err, tc.ok)
		}
		if _, statErr := os.Lstat(tc.path); (statErr == nil) != tc.exists {
			t.Errorf("%s: exists afterwards = %v, want %v", name, statErr == nil, tc.exists)
		}
	}
}
