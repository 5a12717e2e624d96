package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadVerifyUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.json")
	tests := map[string]struct {
		run  func([]string, *bytes.Buffer, *bytes.Buffer) int
		args []string
		code int
		err  string // in stderr (one line) or, for code 0, in stdout
	}{
		"load help":          {runLoadT, []string{"-h"}, 0, "fwctl load:"},
		"load unknown flag":  {runLoadT, []string{"-bogus"}, 2, "flag provided but not defined"},
		"load bad n":         {runLoadT, []string{"-n", "-5"}, 2, "requests -5"},
		"load bad c":         {runLoadT, []string{"-c", "0"}, 2, "-c 0"},
		"load bad mix":       {runLoadT, []string{"-mix", "test=1"}, 2, "must start with /"},
		"load bad url":       {runLoadT, []string{"-url", "127.0.0.1:5000"}, 2, "http://"},
		"load long duration": {runLoadT, []string{"-d", "11m"}, 2, "duration"},
		"load extra arg":     {runLoadT, []string{"now"}, 2, "unexpected argument"},
		"verify help":        {runVerifyT, []string{"-h"}, 0, "fwctl verify:"},
		"verify bad wait":    {runVerifyT, []string{"-wait", "-1s"}, 2, "-wait"},
		"verify no record":   {runVerifyT, []string{"-record", missing}, 1, "no load recorded"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := tc.run(tc.args, &out, &errOut)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.code, errOut.String())
			}
			if tc.code == 0 {
				if !strings.Contains(out.String(), tc.err) {
					t.Errorf("stdout %q, want %q", out.String(), tc.err)
				}
				return
			}
			msg := errOut.String()
			if !strings.Contains(msg, tc.err) || strings.Count(msg, "\n") != 1 {
				t.Errorf("stderr %q, want one line containing %q", msg, tc.err)
			}
		})
	}
}

func runLoadT(args []string, out, errOut *bytes.Buffer) int   { return runLoad(args, out, errOut) }
func runVerifyT(args []string, out, errOut *bytes.Buffer) int { return runVerify(args, out, errOut) }
