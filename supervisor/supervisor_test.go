package supervisor

import (
	"bufio"
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	st := Status{Handled: 12345, Busy: 1500 * time.Millisecond, BusyWith: "/orders/{id}"}
	for _, f := range []struct {
		typ     byte
		payload []byte
	}{
		{frameReady, nil},
		{frameStatus, st.encode()},
		{frameMessage, []byte("opaque\x00bytes\n")},
	} {
		if err := writeFrame(&buf, f.typ, f.payload); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&buf)
	for _, want := range []byte{frameReady, frameStatus, frameMessage} {
		typ, payload, err := readFrame(r)
		if err != nil || typ != want {
			t.Fatalf("readFrame = %q, %v; want %q", typ, err, want)
		}
		if typ == frameStatus {
			got, err := decodeStatus(payload)
			if err != nil || got != st {
				t.Errorf("decodeStatus = %+v, %v; want %+v", got, err, st)
			}
		}
		if typ == frameMessage && string(payload) != "opaque\x00bytes\n" {
			t.Errorf("message payload %q", payload)
		}
	}
	if err := writeFrame(&buf, frameMessage, make([]byte, maxFrame+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversize frame: %v, want ErrFrameTooLarge", err)
	}
	// A reader refuses a header that announces an oversize frame.
	bad := bytes.NewReader([]byte{frameMessage, 0xff, 0xff, 0xff, 0xff})
	if _, _, err := readFrame(bufio.NewReader(bad)); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversize header: %v, want ErrFrameTooLarge", err)
	}
	if _, err := decodeStatus([]byte{1, 2, 3}); err == nil {
		t.Error("short status decoded without error")
	}
}

func TestOptionsValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		o   Options
		err bool
	}{
		"addr only":        {Options{Addr: "127.0.0.1:0"}, false},
		"no addr":          {Options{}, true},
		"negative workers": {Options{Addr: ":0", Workers: -1}, true},
		"negative timeout": {Options{Addr: ":0", Grace: -time.Second}, true},
	} {
		if err := tc.o.Validate(); (err != nil) != tc.err {
			t.Errorf("%s: Validate() = %v, want error %v", name, err, tc.err)
		}
	}
}

func TestBackoff(t *testing.T) {
	s := &Supervisor{opts: Options{BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second}}
	for crashes, want := range []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond,
		400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second} {
		if got := s.backoff(crashes); got != want {
			t.Errorf("backoff(%d) = %s, want %s", crashes, got, want)
		}
	}
	if got := s.backoff(1000); got != time.Second {
		t.Errorf("backoff(1000) = %s, want the cap", got)
	}
}
