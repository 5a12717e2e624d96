package prefork

import (
	"strings"
	"testing"
)

func TestAdminAddrFlag(t *testing.T) {
	tests := []struct {
		addr    string
		wantErr string // "" for accepted
	}{
		{"", ""},
		{"127.0.0.1:5050", ""},
		{"127.0.0.1:0", ""},
		{"[::1]:5050", ""},
		{"localhost:5050", ""},
		{"0.0.0.0:5050", "loopback"},
		{"192.168.1.2:5050", "loopback"},
		{"example.com:5050", "loopback"},
		{"5050", "missing port"},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			_, err := parseConfig(App{Name: "test"}, []string{"-admin-addr", tc.addr}, func(string) string { return "" }, nil)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("-admin-addr %q: %v", tc.addr, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("-admin-addr %q: error %v, want one containing %q", tc.addr, err, tc.wantErr)
			}
		})
	}
}
