//go:build !linux

package embedded

import (
	"os/exec"
	"syscall"
)

// detach puts the child in its own process group, so the terminal's Ctrl-C reaches only hemostat, which
// then shuts the child down itself.
func detach(c *exec.Cmd) {
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
