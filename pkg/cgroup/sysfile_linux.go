package cgroup

import (
	"io/fs"
	"syscall"
	"unsafe"
)

// atFDCWD is AT_FDCWD (-100) as the syscall argument it becomes.
const atFDCWD = ^uintptr(99)

// readFile reads the whole file at path (NUL-terminated, see cpath) into b.data, growing it when the file
// does not fit, and returns the bytes read. It goes straight to openat/read/close: no *os.File, no poller
// registration and no allocation on success. Errors are *fs.PathError with the errno, so
// errors.Is(err, fs.ErrNotExist) holds for a vanished file.
func readFile(path []byte, b *buffer) ([]byte, error) {
	var fd uintptr
	for {
		r, _, errno := syscall.Syscall6(syscall.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(&path[0])),
			syscall.O_RDONLY|syscall.O_CLOEXEC, 0, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return nil, &fs.PathError{Op: "open", Path: goPath(path), Err: errno}
		}
		fd = r
		break
	}
	n := 0
	for {
		if n == len(b.data) {
			grown := make([]byte, 2*len(b.data))
			copy(grown, b.data)
			b.data = grown
		}
		m, err := syscall.Read(int(fd), b.data[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			syscall.Close(int(fd))
			return nil, &fs.PathError{Op: "read", Path: goPath(path), Err: err}
		}
		if m == 0 {
			break
		}
		n += m
	}
	syscall.Close(int(fd))
	return b.data[:n], nil
}

// cpath returns p as a NUL-terminated byte path for readFile.
func cpath(p string) []byte {
	b := make([]byte, len(p)+1)
	copy(b, p)
	return b
}

// goPath is the inverse of cpath, for error messages.
func goPath(p []byte) string { return string(p[:len(p)-1]) }
