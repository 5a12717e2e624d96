//go:build race

package statsd

// raceEnabled: time bounds do not hold under the race detector.
const raceEnabled = true
