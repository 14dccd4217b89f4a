package embedded

// SetRewriteMin sets how far past the live state the journal grows before a rewrite, and returns a
// function that restores it.
func SetRewriteMin(n int64) func() {
	old := rewriteMin
	rewriteMin = n
	return func() { rewriteMin = old }
}

// Loaded is loaded, for tests.
var Loaded = loaded

// Flush writes the in-process store's dirty keys to its journal now, as its flush loop does.
func Flush(s Server) error { return s.(*inProcess).flushNow() }

// SetBeforeRun sets a function the in-process store calls after its hook marked a write command's keys
// and before the command runs, and returns a function that unsets it.
func SetBeforeRun(f func(cmd string, args []string)) func() {
	beforeRun = f
	return func() { beforeRun = nil }
}
