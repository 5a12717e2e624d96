package main

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// TestCheckPorts: a port another program holds (TCP or UDP) or a port set
// twice is one line naming it and the make variable, with a free port
// suggested; free ports pass.
func TestCheckPorts(t *testing.T) {
	tcpHeld, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcpHeld.Close()
	udpHeld, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udpHeld.Close()
	freeAddr := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	portOf := func(a string) string { _, p, _ := net.SplitHostPort(a); return p }
	prom := func(a string) port {
		return port{what: "Prometheus", addr: a, tcp: true, makeVar: "PROMETHEUS_ADDR"}
	}
	statsd := func(a string) port {
		return port{what: "exporter DogStatsD", addr: a, tcp: true, udp: true, makeVar: "STATSD_ADDR"}
	}
	tcpAddr, udpAddr := tcpHeld.Addr().String(), udpHeld.LocalAddr().String()
	a, b := freeAddr(), freeAddr()
	for name, tc := range map[string]struct {
		ports []port
		want  string // "" for no error
	}{
		"all free":    {[]port{prom(a), statsd(b)}, ""},
		"port zero":   {[]port{prom("127.0.0.1:0"), statsd("127.0.0.1:0")}, ""},
		"tcp held":    {[]port{statsd(b), prom(tcpAddr)}, "port " + portOf(tcpAddr) + " (Prometheus) is in use by another program: choose another with make run PROMETHEUS_ADDR=127.0.0.1:"},
		"udp held":    {[]port{prom(a), statsd(udpAddr)}, "port " + portOf(udpAddr) + " (exporter DogStatsD) is in use by another program: choose another with make run STATSD_ADDR=127.0.0.1:"},
		"set twice":   {[]port{prom(a), statsd(a)}, "port " + portOf(a) + " is set for both Prometheus and exporter DogStatsD: choose another with make run STATSD_ADDR=127.0.0.1:"},
		"bad address": {[]port{prom("9090")}, "PROMETHEUS_ADDR"},
	} {
		t.Run(name, func(t *testing.T) {
			err := checkPorts(tc.ports)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line starting %q", err, tc.want)
			}
			// The suggestion is a port that is free now.
			if i := strings.LastIndex(err.Error(), "="); strings.Contains(tc.want, "choose another") && i > 0 {
				sug := err.Error()[i+1:]
				last := tc.ports[len(tc.ports)-1]
				if n, perr := strconv.Atoi(portOf(sug)); perr != nil || n == 0 || !free(sug, last.tcp, last.udp) {
					t.Errorf("suggested %q is not a free port", sug)
				}
			}
		})
	}
}
