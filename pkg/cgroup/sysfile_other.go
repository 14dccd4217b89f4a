//go:build !linux

package cgroup

import (
	"io"
	"os"
)

// readFile reads the whole file at path (NUL-terminated, see cpath) into b.data. cgroups exist only on
// Linux; elsewhere this portable version lets the package build, and the reader finds no hierarchy.
func readFile(path []byte, b *buffer) ([]byte, error) {
	f, err := os.Open(goPath(path))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n := 0
	for {
		if n == len(b.data) {
			grown := make([]byte, 2*len(b.data))
			copy(grown, b.data)
			b.data = grown
		}
		m, err := f.Read(b.data[n:])
		n += m
		if err == io.EOF {
			return b.data[:n], nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// cpath returns p as a NUL-terminated byte path for readFile.
func cpath(p string) []byte {
	b := make([]byte, len(p)+1)
	copy(b, p)
	return b
}

// goPath is the inverse of cpath, for error messages.
func goPath(p []byte) string { return string(p[:len(p)-1]) }
