package statsd

import (
	"strconv"
	"testing"
	"time"
)

func TestMicroseconds(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string // as datadog-go formats it ('f', -1)
	}{
		{0, "0"},
		{1, "0.000001"},
		{time.Microsecond, "0.000001"},
		{123456 * time.Nanosecond, "0.000124"},
		{10 * time.Microsecond, "0.00001"},
		{10*time.Microsecond + 1, "0.000011"},
		{1500 * time.Millisecond, "1.5"},
	}
	for _, tc := range tests {
		if got := strconv.FormatFloat(microseconds(tc.in), 'f', -1, 64); got != tc.want {
			t.Errorf("microseconds(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestMicrosecondsKeepsBuckets checks that rounding never moves a latency
// across a bucket bound of mapping.yml.
func TestMicrosecondsKeepsBuckets(t *testing.T) {
	bounds := []float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	for _, b := range bounds {
		bd := time.Duration(b * 1e9)
		for _, d := range []time.Duration{bd - time.Microsecond, bd - 1, bd, bd + 1, bd + time.Microsecond - 1, bd + time.Microsecond} {
			if in, out := d.Seconds() <= b, microseconds(d) <= b; in != out {
				t.Errorf("%v: <= %v is %v before rounding, %v after", d, b, in, out)
			}
		}
	}
}
