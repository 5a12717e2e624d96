package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// subcommand is one of webapp's subcommands' flag set: -h prints about and
// the flags to stdout; a bad flag or a stray argument is one line on stderr.
type subcommand struct {
	name           string // e.g. "fwctl load"
	about          string
	fs             *flag.FlagSet
	stdout, stderr io.Writer
}

func newSubcommand(name, about string, stdout, stderr io.Writer) *subcommand {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &subcommand{name: name, about: about, fs: fs, stdout: stdout, stderr: stderr}
}

// parse parses args; when it returns false the caller exits with code (0
// after -h, 2 for bad usage).
func (s *subcommand) parse(args []string) (code int, ok bool) {
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(s.stdout, "%s: %s\n\nFlags:\n", s.name, s.about)
			s.fs.SetOutput(s.stdout)
			s.fs.PrintDefaults()
			return 0, false
		}
		return s.usage("%v", err), false
	}
	if s.fs.NArg() > 0 {
		return s.usage("unexpected argument %q", s.fs.Arg(0)), false
	}
	return 0, true
}

// usage prints a bad-usage line and returns exit code 2.
func (s *subcommand) usage(format string, args ...any) int {
	fmt.Fprintf(s.stderr, "%s: %s (see %s -h)\n", s.name, fmt.Sprintf(format, args...), s.name)
	return 2
}
