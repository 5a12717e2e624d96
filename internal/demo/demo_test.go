package demo

import "testing"

func TestEndpoint(t *testing.T) {
	for path, want := range map[string]string{"/test/": "/test/", "/test1/": "/test1/", "/test": "/test", "/test1": "/test1",
		"/no/such/path": "unmatched", "/test/extra": "unmatched"} {
		if got := Endpoint(path); got != want {
			t.Errorf("Endpoint(%q) = %q, want %q", path, got, want)
		}
	}
}
