package forkwatch

import (
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/forkwatch/forkwatch/supervisor"
)

// TestNotifyHooks: READY=1 at first boot; the new supervisor of an upgrade
// adds its PID as MAINPID to it.
func TestNotifyHooks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	notify := supervisor.NewNotifier()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for name, tc := range map[string]struct {
		upgraded bool
		want     string
	}{
		"first boot": {want: "READY=1"},
		"upgrade":    {upgraded: true, want: "READY=1\nMAINPID=" + strconv.Itoa(os.Getpid())},
	} {
		notifyHooks(notify, tc.upgraded, log).Serving(5)
		buf := make([]byte, 256)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil || string(buf[:n]) != tc.want {
			t.Errorf("%s: Serving sent %q, %v; want %q", name, buf[:n], err, tc.want)
		}
	}
}
