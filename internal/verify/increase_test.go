package verify

import (
	"testing"
	"time"
)

func TestIncrease(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tests := []struct {
		name   string
		points []Point
		want   float64
	}{
		{"no samples", nil, 0},
		{"born after start counts from zero", []Point{{at(2), 5, 1}, {at(4), 9, 1}}, 9},
		{"baseline before start", []Point{{at(-4), 100, 1}, {at(-2), 120, 1}, {at(2), 125, 1}, {at(4), 130, 1}}, 10},
		{"sample at start is the baseline", []Point{{at(0), 100, 1}, {at(2), 107, 1}}, 7},
		{"only before start", []Point{{at(-4), 100, 1}, {at(-2), 120, 1}}, 0},
		{"drop is a reset", []Point{{at(2), 50, 1}, {at(4), 80, 1}, {at(6), 10, 1}, {at(8), 15, 1}}, 95},
		{"new epoch without a drop is a reset", []Point{{at(2), 50, 1}, {at(4), 80, 1}, {at(6), 90, 2}, {at(8), 95, 2}}, 175},
		{"unknown epoch falls back to drops", []Point{{at(2), 50, 0}, {at(4), 80, 1}, {at(6), 90, 0}}, 90},
		{"restart right after start", []Point{{at(-2), 100, 1}, {at(2), 3, 2}}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Increase(tc.points, t0); got != tc.want {
				t.Errorf("Increase = %v, want %v", got, tc.want)
			}
		})
	}
}
