//go:build !unix

package bench

import (
	"errors"
	"time"
)

// SelfCPU is this process's cumulative CPU time; it is not available on this system.
func SelfCPU() (time.Duration, error) {
	return 0, errors.New("getrusage: not supported on this system")
}
