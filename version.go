package forkwatch

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// BuildInfo says which build of the program is running. The supervisor sends
// it as the forkwatch_build_info gauge; -version and `webapp version` print
// it.
type BuildInfo struct {
	// Version is the main module's version (a tag or a pseudo-version, set
	// by `go install module@version` or a build in a VCS checkout), else the
	// VCS revision (with "-dirty" for uncommitted changes), else "devel".
	Version string
	// GoVersion is the Go release that built the binary, e.g. "go1.26.8".
	GoVersion string
}

// ReadBuildInfo reads the running binary's BuildInfo.
func ReadBuildInfo() BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return BuildInfo{Version: "devel", GoVersion: runtime.Version()}
	}
	return buildInfo(bi)
}

func buildInfo(bi *debug.BuildInfo) BuildInfo {
	b := BuildInfo{Version: "devel", GoVersion: bi.GoVersion}
	if b.GoVersion == "" {
		b.GoVersion = runtime.Version()
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		b.Version = v
		return b
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" {
		// 12 hex digits, as Go's pseudo-versions abbreviate a revision.
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if dirty {
			rev += "-dirty"
		}
		b.Version = rev
	}
	return b
}

// String is "VERSION GOVERSION", e.g. "v1.2.0 go1.26.8".
func (b BuildInfo) String() string { return fmt.Sprintf("%s %s", b.Version, b.GoVersion) }
