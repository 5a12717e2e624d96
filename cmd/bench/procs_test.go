package main

import (
	"os"
	"os/exec"
	"testing"
)

// TestProcReaders reads this test's own process and a child it starts.
func TestProcReaders(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ppid, _, err := procStat(cmd.Process.Pid)
	if err != nil || ppid != os.Getpid() {
		t.Errorf("procStat(child) ppid %d, %v; want %d", ppid, err, os.Getpid())
	}
	if rss := rssBytes(os.Getpid()); rss < 1<<20 {
		t.Errorf("rssBytes(self) = %d, want at least 1 MiB", rss)
	}
	if busy := machineBusy(); busy <= 0 {
		t.Errorf("machineBusy() = %v, want > 0", busy)
	}
	if n := udpRcvbufErrors(); n < 0 {
		t.Errorf("udpRcvbufErrors() = %d, want a count", n)
	}
	if _, _, err := procStat(-1); err == nil {
		t.Error("procStat(-1) gave no error")
	}
}
