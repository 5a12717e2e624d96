// Package proctree answers the two questions about processes that the tests
// and the benchmark ask of /proc (through prometheus/procfs): which live
// children a process has, and whether a process is still alive.
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
