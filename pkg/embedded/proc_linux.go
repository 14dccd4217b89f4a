package embedded

import (
	"os/exec"
	"syscall"
)

// detach puts the child in its own process group, so the terminal's Ctrl-C reaches only hemostat, which
// then shuts the child down itself; and asks the kernel to send it SIGTERM (a clean shutdown that flushes
// the AOF) if hemostat dies without doing so.
func detach(c *exec.Cmd) {
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
