package main

import (
	"fmt"
	"net"
	"strconv"
)

// port is an address one of the stack's processes will bind, and the make
// variable that sets it.
type port struct {
	what    string // "Prometheus"
	addr    string // host:port
	tcp     bool
	udp     bool
	makeVar string // "PROMETHEUS_ADDR"
}

// suggestRange is how far above a busy port checkPorts looks for a free one
// to suggest.
const suggestRange = 100

// checkPorts binds each port for a moment and returns one line naming the
// first one that is taken (or set twice) and a make variable value that
// would work. A port another program holds would otherwise make the
// readiness probes talk to that program, or fail half-way through start-up.
func checkPorts(ports []port) error {
	seen := map[string]string{}
	for _, p := range ports {
		host, num, err := net.SplitHostPort(p.addr)
		if err != nil {
			return fmt.Errorf("%s=%q (%s): %v: use make run %s=127.0.0.1:PORT", p.makeVar, p.addr, p.what, err, p.makeVar)
		}
		if num == "0" {
			continue // the kernel picks a free one
		}
		if other, dup := seen[num]; dup {
			return fmt.Errorf("port %s is set for both %s and %s: choose another with make run %s=%s",
				num, other, p.what, p.makeVar, suggest(host, num, p, seen))
		}
		seen[num] = p.what
		if !free(p.addr, p.tcp, p.udp) {
			return fmt.Errorf("port %s (%s) is in use by another program: choose another with make run %s=%s",
				num, p.what, p.makeVar, suggest(host, num, p, seen))
		}
	}
	return nil
}

// free reports whether addr can be bound now, for TCP and/or UDP.
func free(addr string, tcp, udp bool) bool {
	if tcp {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		l.Close()
	}
	if udp {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}

// suggest is host:port for the first free port above num that no other
// process of the stack uses, or host:PORT if there is none nearby.
func suggest(host, num string, p port, taken map[string]string) string {
	n, err := strconv.Atoi(num)
	if err == nil {
		for c := n + 1; c <= n+suggestRange && c <= 65535; c++ {
			cs := strconv.Itoa(c)
			if _, used := taken[cs]; used {
				continue
			}
			if a := net.JoinHostPort(host, cs); free(a, p.tcp, p.udp) {
				return a
			}
		}
	}
	return net.JoinHostPort(host, "PORT")
}
