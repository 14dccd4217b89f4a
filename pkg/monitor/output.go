package monitor

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Output formats of the notice lines on stdout.
const (
	FormatText  = "text"
	FormatJSONL = "jsonl"
)

// FormatNotice renders one notice as a readable line (text) or a JSON line (jsonl), newline included.
func FormatNotice(n Notice, format string) ([]byte, error) {
	if format == FormatJSONL {
		b, err := json.Marshal(n)
		if err != nil {
			return nil, fmt.Errorf("encode notice: %w", err)
		}
		return append(b, '\n'), nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-9s %-8s %-15s %s/%s", n.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		n.Kind, n.Severity, n.Class, n.Host, n.Container)
	switch n.Kind {
	case NoticeOpened, NoticeRealerted:
		if n.Alert != nil {
			for _, a := range n.Alert.Anomalies {
				fmt.Fprintf(&b, " %s=%s", a.Type, strconv.FormatFloat(a.Actual, 'f', -1, 64))
				if a.Threshold != 0 {
					fmt.Fprintf(&b, "(>%s)", strconv.FormatFloat(a.Threshold, 'f', -1, 64))
				}
			}
			if n.Alert.Escalation && n.Kind == NoticeOpened {
				b.WriteString(" escalation")
			}
		}
		if n.Kind == NoticeOpened && !n.EventTime.IsZero() {
			fmt.Fprintf(&b, " detected_in=%s", n.Time.Sub(n.EventTime).Round(time.Millisecond))
		}
	case NoticeCondition:
		fmt.Fprintf(&b, " relapse=%d after_start=%s open_for=%s", n.Relapses, n.RelapseAfter.Round(time.Millisecond),
			n.Time.Sub(n.OpenedAt).Round(time.Second))
	default:
		fmt.Fprintf(&b, " open_for=%s reason=%q", n.Time.Sub(n.OpenedAt).Round(time.Second), n.Reason)
	}
	b.WriteByte('\n')
	return []byte(b.String()), nil
}

// printQueueLen is how many lines may wait for a slow reader of the output before lines are dropped.
const printQueueLen = 1024

// printer writes notices to the output from its own goroutine, so a slow reader of stdout never delays
// detection; when its buffer is full a line is dropped.
type printer struct {
	w      io.Writer
	format string
	in     chan Notice
}

func newPrinter(w io.Writer, format string) *printer {
	return &printer{w: w, format: format, in: make(chan Notice, printQueueLen)}
}

func (p *printer) push(n Notice) {
	if p.w == nil || (n.Kind == NoticeCondition && !n.Relapse) {
		return // one line per incident state change; a condition that clears is not one, a relapse is
	}
	select {
	case p.in <- n:
	default:
	}
}

// run prints until done is closed, then prints what is left.
func (p *printer) run(done <-chan struct{}) {
	for {
		select {
		case n := <-p.in:
			p.print(n)
		case <-done:
			for {
				select {
				case n := <-p.in:
					p.print(n)
				default:
					return
				}
			}
		}
	}
}

func (p *printer) print(n Notice) {
	if b, err := FormatNotice(n, p.format); err == nil {
		_, _ = p.w.Write(b)
	}
}
