package cgroup

// The parsers below work on the bytes of one file, without allocation, reflection or fmt.

// parseUint parses a decimal unsigned integer, ignoring surrounding spaces and newlines.
func parseUint(b []byte) (uint64, bool) {
	b = trimSpace(b)
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false // overflow
		}
		v = v*10 + d
	}
	return v, true
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// nextLine splits the first line off data.
func nextLine(data []byte) (line, rest []byte) {
	for i, c := range data {
		if c == '\n' {
			return data[:i], data[i+1:]
		}
	}
	return data, nil
}

// nextField splits the first space-separated field off s, skipping leading blanks.
func nextField(s []byte) (field, rest []byte) {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for i, c := range s {
		if c == ' ' || c == '\t' {
			return s[:i], s[i+1:]
		}
	}
	return s, nil
}

// keyValue finds the line "key value" in a flat-keyed file (memory.stat, cpu.stat, memory.events,
// memory.oom_control) and parses its value. The key must match the whole first field.
func keyValue(data []byte, key string) (uint64, bool) {
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		if len(line) > len(key) && (line[len(key)] == ' ' || line[len(key)] == '\t') && string(line[:len(key)]) == key {
			return parseUint(line[len(key)+1:])
		}
	}
	return 0, false
}

// equalFold reports whether b equals the ASCII word s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// parseBlkioV1 sums the Read and Write bytes over all devices of a v1 blkio *io_service_bytes* file
// ("8:0 Read 4096" lines, then "Total N"). The operation is matched without regard to case: the kernel
// writes "Read", Docker's v2 translation writes "read". entries counts the device lines, so a caller can
// tell an empty file (no I/O accounted by this policy) from zero bytes.
func parseBlkioV1(data []byte) (read, write uint64, entries int) {
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		dev, rest := nextField(line)
		if len(dev) == 0 || equalFold(dev, "total") {
			continue
		}
		op, rest := nextField(rest)
		v, ok := parseUint(rest)
		if !ok {
			continue
		}
		entries++
		switch {
		case equalFold(op, "read"):
			read += v
		case equalFold(op, "write"):
			write += v
		}
	}
	return read, write, entries
}

// parseIOStatV2 sums rbytes and wbytes over all devices of a v2 io.stat file
// ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" lines).
func parseIOStatV2(data []byte) (read, write uint64) {
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		_, rest := nextField(line) // device
		for len(rest) > 0 {
			var kv []byte
			kv, rest = nextField(rest)
			switch {
			case len(kv) > 7 && string(kv[:7]) == "rbytes=":
				if v, ok := parseUint(kv[7:]); ok {
					read += v
				}
			case len(kv) > 7 && string(kv[:7]) == "wbytes=":
				if v, ok := parseUint(kv[7:]); ok {
					write += v
				}
			}
		}
	}
	return read, write
}

// parseNetDev sums received and transmitted bytes over all interfaces but lo in a /proc/<pid>/net/dev
// file: two header lines, then "  eth0: rxbytes rxpackets ... (8 receive fields) txbytes ...".
func parseNetDev(data []byte) (rx, tx uint64) {
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		colon := -1
		for i, c := range line {
			if c == ':' {
				colon = i
				break
			}
		}
		if colon < 0 {
			continue // header
		}
		if string(trimSpace(line[:colon])) == "lo" {
			continue
		}
		rest := line[colon+1:]
		for i := 0; i < 9 && len(rest) > 0; i++ {
			var f []byte
			f, rest = nextField(rest)
			switch i {
			case 0:
				if v, ok := parseUint(f); ok {
					rx += v
				}
			case 8:
				if v, ok := parseUint(f); ok {
					tx += v
				}
			}
		}
	}
	return rx, tx
}

// parseMemTotal returns MemTotal of /proc/meminfo in bytes.
func parseMemTotal(data []byte) (uint64, bool) {
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		key, rest := nextField(line)
		if string(key) != "MemTotal:" {
			continue
		}
		num, unit := nextField(rest)
		v, ok := parseUint(num)
		if !ok {
			return 0, false
		}
		if string(trimSpace(unit)) == "kB" {
			v *= 1024
		}
		return v, true
	}
	return 0, false
}
