// Package proctree answers the questions about processes that the tests
// and the benchmark ask of /proc (through prometheus/procfs): which live
// children (and descendants) a process has, and whether a process is still
// alive.
package proctree

import "github.com/prometheus/procfs"

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
