package forkwatch

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"
)

// TestRunbooks: every alert in rules.yml has a runbook_url, and it points
// at a section of docs/operations.md that exists.
func TestRunbooks(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	b, err := os.ReadFile("rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	nonWord := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, line := range strings.Split(string(doc), "\n") {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			// GitHub's anchor: lower case, punctuation dropped, spaces to dashes.
			h = strings.TrimSpace(strings.TrimLeft(h, "#"))
			anchors[strings.ReplaceAll(nonWord.ReplaceAllString(strings.ToLower(h), ""), " ", "-")] = true
		}
	}
	const base = "https://github.com/forkwatch/forkwatch/blob/main/docs/operations.md#"
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			url := r.Annotations["runbook_url"]
			anchor, ok := strings.CutPrefix(url, base)
			switch {
			case !ok:
				t.Errorf("%s: runbook_url %q, want %s<section>", r.Alert, url, base)
			case !anchors[anchor]:
				t.Errorf("%s: runbook_url %q: docs/operations.md has no section #%s", r.Alert, url, anchor)
			case anchor != strings.ToLower(r.Alert):
				t.Errorf("%s: runbook_url points at #%s, not the alert's own section", r.Alert, anchor)
			}
		}
	}
	if n == 0 {
		t.Error("rules.yml has no alerts")
	}
}
