// Package proctree answers the questions about processes that the tests,
// the benchmark and the launcher ask of /proc (through prometheus/procfs):
// which live children (and descendants) a process has, whether a process is
// still alive, and whether it holds a listening socket on a port.
package proctree

import (
	"fmt"
	"strings"

	"github.com/prometheus/procfs"
)

// Children lists the live (not zombie) child processes of pid.
func Children(pid int) []int {
	procs, _ := procfs.AllProcs()
	var out []int
	for _, p := range procs {
		if st, err := p.Stat(); err == nil && st.PPID == pid && st.State != "Z" {
			out = append(out, p.PID)
		}
	}
	return out
}

// Alive reports whether pid is a live (not zombie) process.
func Alive(pid int) bool {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return false
	}
	st, err := p.Stat()
	return err == nil && st.State != "Z"
}

// tcpListen is the state of a listening socket in /proc/net/tcp.
const tcpListen = 0x0A

// ListensOn reports whether process pid holds a listening TCP socket (IPv4
// or IPv6) on port, in this process's network namespace: whether it, and
// not another program, is what answers there.
func ListensOn(pid, port int) (bool, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return false, err
	}
	inodes := map[string]bool{}
	for _, table := range []func() (procfs.NetTCP, error){fs.NetTCP, fs.NetTCP6} {
		lines, err := table()
		if err != nil {
			continue // no IPv6, say
		}
		for _, l := range lines {
			if l.LocalPort == uint64(port) && l.St == tcpListen {
				inodes[fmt.Sprintf("socket:[%d]", l.Inode)] = true
			}
		}
	}
	if len(inodes) == 0 {
		return false, nil
	}
	proc, err := fs.Proc(pid)
	if err != nil {
		return false, err
	}
	targets, err := proc.FileDescriptorTargets()
	if err != nil {
		return false, err
	}
	for _, t := range targets {
		if strings.HasPrefix(t, "socket:[") && inodes[t] {
			return true, nil
		}
	}
	return false, nil
}

// Descendants lists the live processes below pid: its children, theirs, and
// so on, as they are at the time of the call.
func Descendants(pid int) []int {
	var out []int
	for next := []int{pid}; len(next) > 0; {
		var below []int
		for _, p := range next {
			below = append(below, Children(p)...)
		}
		out = append(out, below...)
		next = below
	}
	return out
}
