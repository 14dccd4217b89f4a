package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
)

// unlimitedV1 is the smallest memory.limit_in_bytes read as "no limit": v1 reports the page counter's
// maximum (9223372036854771712 with 4 KiB pages).
const unlimitedV1 = 1 << 62

// read fills st from t's files using b as scratch space.
func (r *Reader) read(t *target, b *buffer, st *Stats) error {
	*st = Stats{Version: t.version}

	data, err := readFile(t.cpu, b)
	if err != nil {
		return err
	}
	var ok bool
	if t.version == 1 {
		st.CPUUsageNS, ok = parseUint(data)
	} else {
		var us uint64
		us, ok = keyValue(data, "usage_usec")
		st.CPUUsageNS = us * 1000
	}
	if !ok {
		return malformed(t.cpu)
	}

	if data, err = readFile(t.memUsage, b); err != nil {
		return err
	}
	if st.MemoryUsage, ok = parseUint(data); !ok {
		return malformed(t.memUsage)
	}

	if data, err = readFile(t.memLimit, b); err != nil {
		return err
	}
	limit, ok := parseUint(data)
	switch {
	case t.version == 2 && string(trimSpace(data)) == "max":
		st.MemoryUnlimited = true
	case !ok:
		return malformed(t.memLimit)
	case t.version == 1 && limit >= unlimitedV1:
		st.MemoryUnlimited = true
	default:
		st.MemoryLimit = limit
	}
	if host := r.hostMemory(); host > 0 && (st.MemoryUnlimited || st.MemoryLimit > host) {
		st.MemoryLimit = host
	}

	st.MemoryWorkingSet = st.MemoryUsage
	if data, err = readFile(t.memStat, b); err == nil {
		key := "inactive_file"
		if t.version == 1 {
			key = "total_inactive_file"
		}
		if inactive, ok := keyValue(data, key); ok {
			if inactive < st.MemoryUsage {
				st.MemoryWorkingSet = st.MemoryUsage - inactive
			} else {
				st.MemoryWorkingSet = 0
			}
		}
	} else if !optional(err) {
		return err
	}

	if data, err = readFile(t.oom, b); err == nil {
		st.OOMEvents, _ = keyValue(data, "oom_kill")
	} else if !optional(err) {
		return err
	}

	for _, f := range t.blkio {
		data, err = readFile(f, b)
		if err != nil {
			if optional(err) {
				continue
			}
			return err
		}
		if t.version == 2 {
			st.BlkioRead, st.BlkioWrite = parseIOStatV2(data)
			break
		}
		rd, wr, entries := parseBlkioV1(data)
		if entries > 0 {
			st.BlkioRead, st.BlkioWrite = rd, wr
			break
		}
	}

	if t.pids != nil {
		if data, err = readFile(t.pids, b); err == nil {
			st.PIDs, _ = parseUint(data)
		} else if !optional(err) {
			return err
		}
	}

	// Last: a pid that has exited fails here even while its cgroup lingers.
	if data, err = readFile(t.netDev, b); err != nil {
		return err
	}
	st.NetRx, st.NetTx = parseNetDev(data)
	return nil
}

// optional reports whether a read error on a file the reader can do without is to be ignored: the file
// does not exist on this kernel or in this cgroup.
func optional(err error) bool { return errors.Is(err, fs.ErrNotExist) }

func malformed(path []byte) error {
	return fmt.Errorf("parse %s: malformed content", goPath(path))
}
