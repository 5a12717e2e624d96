package tally

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteTable prints lines as an aligned table with a total row; rows that
// disagree are marked.
func WriteTable(w io.Writer, lines []Line) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "endpoint\thttp_status\tbefore load\tnow\tPrometheus saw\tload sent\tdifference\t")
	var tot Line
	for _, l := range lines {
		mark := ""
		if l.Diff() != 0 {
			mark = "  <- differs"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Endpoint, l.Status, num(l.Before), num(l.Now),
			num(l.Seen()), num(l.Sent), signed(l.Diff()), mark)
		tot.Before += l.Before
		tot.Now += l.Now
		tot.Sent += l.Sent
	}
	fmt.Fprintf(tw, "total\t\t%s\t%s\t%s\t%s\t%s\t\n", num(tot.Before), num(tot.Now), num(tot.Seen()), num(tot.Sent), signed(tot.Diff()))
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if _, err := io.WriteString(w, strings.TrimRight(line, " \n")+strings.Repeat("\n", strings.Count(line, "\n"))); err != nil {
			return err
		}
	}
	return nil
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func signed(v float64) string {
	if v > 0 {
		return "+" + num(v)
	}
	return num(v)
}
