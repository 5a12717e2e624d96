package statsd

import (
	"fmt"
	"strings"
)

// maxTagValue bounds a tag value's length; longer values are cut.
const maxTagValue = 200

// SanitizeTagValue makes s safe as a DogStatsD tag value and a Prometheus
// label value: every byte outside printable ASCII, and each of the DogStatsD
// separators | # , : @ as well as space, quote and backslash, becomes '_';
// the result is at most 200 bytes. It returns s itself when nothing changes.
func SanitizeTagValue(s string) string {
	if len(s) > maxTagValue {
		s = s[:maxTagValue]
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if !tagByteOK(s[i]) {
			clean = false
			break
		}
	}
	if clean && s != "" {
		return s
	}
	if s == "" {
		return "_"
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if tagByteOK(s[i]) {
			b.WriteByte(s[i])
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func tagByteOK(c byte) bool {
	return c > ' ' && c < 0x7f && strings.IndexByte(`|#,:@"\`, c) < 0
}

// checkTagValue rejects a configured tag value that SanitizeTagValue would
// change, so a bad -app-name is an error at start-up, not a silent rename.
func checkTagValue(v string) error {
	if v == "" {
		return nil
	}
	if SanitizeTagValue(v) != v {
		return fmt.Errorf("statsd: tag value %q: use printable ASCII without spaces or any of |#,:@\"\\ (at most %d bytes)", v, maxTagValue)
	}
	return nil
}
