package proctree

import (
	"net"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"
)

func TestChildrenAndAlive(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if kids := Children(os.Getpid()); !slices.Contains(kids, pid) {
		t.Errorf("Children(self) = %v, want it to include %d", kids, pid)
	}
	if !Alive(pid) {
		t.Errorf("Alive(%d) = false for a running child", pid)
	}
	_ = cmd.Process.Kill()
	// Killed but not yet reaped: a zombie, neither alive nor a child.
	deadline := time.Now().Add(5 * time.Second)
	for Alive(pid) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if Alive(pid) {
		t.Fatalf("Alive(%d) still true 5s after SIGKILL", pid)
	}
	if slices.Contains(Children(os.Getpid()), pid) {
		t.Errorf("Children(self) still lists the killed child %d", pid)
	}
	_ = cmd.Wait()
	if Alive(-1) {
		t.Error("Alive(-1) = true")
	}
}

func TestListensOn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if ok, err := ListensOn(os.Getpid(), port); !ok || err != nil {
		t.Errorf("ListensOn(self, %d) = %v, %v; want true", port, ok, err)
	}
	if ok, err := ListensOn(1, port); ok {
		t.Errorf("ListensOn(1, %d) = %v, %v; want false", port, ok, err)
	}
	ln.Close()
	if ok, err := ListensOn(os.Getpid(), port); ok || err != nil {
		t.Errorf("after close: ListensOn = %v, %v; want false", ok, err)
	}
}

func TestDescendants(t *testing.T) {
	// sh -> sleep: the grandchild is a descendant of this process.
	cmd := exec.Command("sh", "-c", "sleep 30 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	var below []int
	for time.Now().Before(deadline) {
		if below = Descendants(cmd.Process.Pid); len(below) == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(below) != 1 {
		t.Fatalf("Descendants(sh) = %v, want its one sleep", below)
	}
	if all := Descendants(os.Getpid()); !slices.Contains(all, cmd.Process.Pid) || !slices.Contains(all, below[0]) {
		t.Errorf("Descendants(self) = %v, want sh %d and sleep %d", all, cmd.Process.Pid, below[0])
	}
	_ = syscall.Kill(below[0], syscall.SIGKILL)
}
