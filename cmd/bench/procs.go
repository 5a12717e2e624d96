package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/procfs"
)

// procStat reads a process's parent PID and CPU time (user + system).
func procStat(pid int) (ppid int, cpu time.Duration, err error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, 0, err
	}
	st, err := p.Stat()
	if err != nil {
		return 0, 0, err
	}
	return st.PPID, time.Duration(st.CPUTime() * float64(time.Second)), nil
}

// cpuOf adds up the CPU time of pids; processes that are gone count 0.
func cpuOf(pids []int) time.Duration {
	var total time.Duration
	for _, p := range pids {
		if _, c, err := procStat(p); err == nil {
			total += c
		}
	}
	return total
}

// rssBytes reads a process's resident set size.
func rssBytes(pid int) int64 {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0
	}
	return int64(st.VmRSS)
}

// machineBusy returns the machine's total busy CPU time (all cores, from
// /proc/stat: everything but idle and iowait; guest time is already in user).
func machineBusy() time.Duration {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0
	}
	st, err := fs.Stat()
	if err != nil {
		return 0
	}
	c := st.CPUTotal
	busy := c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
	return time.Duration(busy * float64(time.Second))
}

// udpRcvbufErrors reads the kernel's count of UDP datagrams dropped because a
// socket's receive buffer was full (this network namespace's, from
// /proc/self/net/snmp).
func udpRcvbufErrors() int64 {
	p, err := procfs.Self()
	if err != nil {
		return -1
	}
	snmp, err := p.Snmp()
	if err != nil || snmp.Udp.RcvbufErrors == nil {
		return -1
	}
	return int64(*snmp.Udp.RcvbufErrors)
}

// machineFacts describes the machine for BENCHMARKS.md.
type machineFacts struct {
	CPUs      int
	CPUModel  string
	Kernel    string
	GoVersion string
	LoadAvg   string
	// OthersBusy is the share of all cores that other processes kept busy
	// in the seconds before the run, 0..1.
	OthersBusy float64
}

func facts(root string) machineFacts {
	m := machineFacts{CPUs: runtime.NumCPU(), CPUModel: "unknown", Kernel: "unknown", GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	cmd := exec.Command("go", "version")
	cmd.Dir = root
	if out, err := cmd.Output(); err == nil {
		m.GoVersion = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	const window = 3 * time.Second
	before := machineBusy()
	time.Sleep(window) // measuring idle time needs wall time to pass
	m.OthersBusy = float64(machineBusy()-before) / float64(window) / float64(m.CPUs)
	return m
}

// abs makes a path absolute, for the commands printed in BENCHMARKS.md.
func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}
