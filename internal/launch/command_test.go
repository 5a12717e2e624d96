package launch

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestStartCommand: the program runs in dir with env added to this
// process's environment, and Stop returns once it has exited.
func TestStartCommand(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	p, err := StartCommand("sh", "sh", []string{"-c", `pwd; echo "$LAUNCH_TEST"; echo "$HOME"`}, []string{"LAUNCH_TEST=yes"}, dir, &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(5 * time.Second) })
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("sh did not exit")
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || lines[0] != dir || lines[1] != "yes" {
		t.Errorf("output %q, want the dir %s, yes and $HOME", out.String(), dir)
	}
	if err := p.Stop(time.Second); err != nil {
		t.Errorf("Stop after exit: %v", err)
	}
}
