package main

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// bench collects the figures of one invocation.
type bench struct {
	o    options
	log  *slog.Logger
	rows []row
}

// row is one figure: the agent's and the baseline's, when there is one.
type row struct {
	what         string
	agent, plain float64 // plain 0: no baseline
	unit         string
	note         string
}

func (b *bench) add(r row) {
	b.rows = append(b.rows, r)
	b.log.Info("figure", "what", r.what, "agent", r.agent, "plain", r.plain, "unit", r.unit)
}

// median of samples (at least one).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (b *bench) print(w io.Writer) {
	host, _ := hostInfo()
	fmt.Fprintf(w, "\netcd-agent bench: 3-node TLS cluster on loopback, median of %d runs, %s, %d CPUs, %s\n\n",
		b.o.runs, host, runtime.NumCPU(), time.Now().UTC().Format("2006-01-02"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "what\tetcd-agent\tplain etcd\tratio\tnote")
	for _, r := range b.rows {
		plain, ratio := "-", "-"
		if r.plain != 0 {
			plain = fmt.Sprintf("%s %s", num(r.plain), r.unit)
			ratio = fmt.Sprintf("%.2f", r.agent/r.plain)
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%s\n", r.what, num(r.agent), r.unit, plain, ratio, r.note)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nratio = etcd-agent / plain etcd; for times and latencies lower is better, for throughput higher is better.")
}

func num(f float64) string {
	switch {
	case f >= 100:
		return fmt.Sprintf("%.0f", f)
	case f >= 10:
		return fmt.Sprintf("%.1f", f)
	default:
		return fmt.Sprintf("%.2f", f)
	}
}

// hostInfo names the CPU, for the figures' context.
func hostInfo() (string, error) {
	b, err := readFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU", err
	}
	for _, line := range strings.Split(b, "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":")), nil
		}
	}
	return "unknown CPU", nil
}
