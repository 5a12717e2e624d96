package forkwatch

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildInfo(t *testing.T) {
	for name, tc := range map[string]struct {
		bi   debug.BuildInfo
		want BuildInfo
	}{
		"tagged": {debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"}},
			BuildInfo{"v1.2.0", "go1.26.8"}},
		"revision": {debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0c8c4eb1f2a3b4c5d6e7f8091a2b3c4d5e6f7081"}}},
			BuildInfo{"0c8c4eb1f2a3", "go1.26.8"}},
		"dirty": {debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0c8c4eb"}, {Key: "vcs.modified", Value: "true"}}},
			BuildInfo{"0c8c4eb-dirty", "go1.26.8"}},
		"nothing": {debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			BuildInfo{"devel", "go1.26.8"}},
	} {
		if got := buildInfo(&tc.bi); got != tc.want {
			t.Errorf("%s: buildInfo = %+v, want %+v", name, got, tc.want)
		}
	}
}

func TestVersionFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Main(App{Name: "shop", Args: []string{"-version"}, Stdout: &out, Stderr: &errOut})
	if code != 0 {
		t.Fatalf("Main(-version) = %d, want 0; stderr %q", code, errOut.String())
	}
	want := "shop version " + ReadBuildInfo().String() + "\n"
	if out.String() != want {
		t.Errorf("-version printed %q, want %q", out.String(), want)
	}
	if !strings.HasPrefix(ReadBuildInfo().GoVersion, "go") {
		t.Errorf("GoVersion %q", ReadBuildInfo().GoVersion)
	}
}
