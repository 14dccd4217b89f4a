package docker

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	dcontainer "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// LogLine is one line of a container's output.
type LogLine struct {
	Stream string // stdout or stderr
	Text   string
}

// maxLogBytes bounds what one Logs call reads, whatever the tail.
const maxLogBytes = 4 << 20

// Logs returns the last tail lines of a container's stdout and stderr, in order, demultiplexed (containers
// with a TTY have one raw stream, reported as stdout).
func (c *Client) Logs(ctx context.Context, id string, tail int) ([]LogLine, error) {
	if tail <= 0 {
		tail = 100
	}
	r, err := c.api.ContainerLogs(ctx, id, dcontainer.LogsOptions{
		ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(tail),
	})
	if err != nil {
		return nil, classify("logs "+id, err)
	}
	defer r.Close()
	raw, err := io.ReadAll(io.LimitReader(r, maxLogBytes))
	if err != nil {
		return nil, classify("logs "+id, err)
	}
	return splitLogs(raw)
}

// splitLogs demultiplexes Docker's framed log stream (or takes raw TTY output as stdout) into lines.
func splitLogs(raw []byte) ([]LogLine, error) {
	var lines []LogLine
	if !multiplexed(raw) {
		return appendLines(lines, "stdout", raw), nil
	}
	var order []LogLine // frames in arrival order; lines may span frames
	out := &frameWriter{stream: "stdout", frames: &order}
	errw := &frameWriter{stream: "stderr", frames: &order}
	if _, err := stdcopy.StdCopy(out, errw, bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("demultiplex logs: %w", err)
	}
	// Join consecutive frames of one stream, then split into lines.
	var cur bytes.Buffer
	stream := ""
	for _, f := range order {
		if f.Stream != stream && cur.Len() > 0 {
			lines = appendLines(lines, stream, cur.Bytes())
			cur.Reset()
		}
		stream = f.Stream
		cur.WriteString(f.Text)
	}
	if cur.Len() > 0 {
		lines = appendLines(lines, stream, cur.Bytes())
	}
	return lines, nil
}

// multiplexed reports whether b starts with a stdcopy frame header (stream 0-2, three zero bytes).
func multiplexed(b []byte) bool {
	return len(b) >= 8 && b[0] <= 2 && b[1] == 0 && b[2] == 0 && b[3] == 0
}

func appendLines(lines []LogLine, stream string, b []byte) []LogLine {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), maxLogBytes)
	for sc.Scan() {
		lines = append(lines, LogLine{Stream: stream, Text: strings.TrimRight(sc.Text(), "\r")})
	}
	return lines
}

type frameWriter struct {
	stream string
	frames *[]LogLine
}

// Write records one frame of its stream.
func (w *frameWriter) Write(p []byte) (int, error) {
	*w.frames = append(*w.frames, LogLine{Stream: w.stream, Text: string(p)})
	return len(p), nil
}
