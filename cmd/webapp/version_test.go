package main

import (
	"bytes"
	"regexp"
	"testing"
)

func TestVersionSubcommand(t *testing.T) {
	var out bytes.Buffer
	if code := runVersion(&out); code != 0 {
		t.Fatalf("webapp version: exit %d", code)
	}
	if !regexp.MustCompile(`^webapp version \S+ go\S+\n$`).MatchString(out.String()) {
		t.Errorf("webapp version printed %q, want \"webapp version VERSION GOVERSION\"", out.String())
	}
}
