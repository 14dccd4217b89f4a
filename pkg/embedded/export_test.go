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
