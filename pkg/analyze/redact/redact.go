// Package redact removes secrets from container output before it leaves the host for an LLM: the
// container's own environment values, and the shapes secrets usually take in logs (cloud keys, chat and
// API tokens, JWTs, bearer headers, passwords, credentials in connection strings, private key blocks).
package redact

import (
	"regexp"
	"slices"
	"strings"
)

// Mask replaces every secret.
const Mask = "[REDACTED]"

// Redactor removes secrets from text. It is safe for concurrent use.
type Redactor struct {
	values []string         // literal values to remove, longest first
	words  []*regexp.Regexp // short values, removed only as whole words
}

// Short non-secret values would blank out half a log; they are only redacted when their key looks secret.
const (
	minValueLen       = 8
	minSecretValueLen = 4
)

// harmless are environment variables whose values are not secrets and appear everywhere in logs.
var harmless = []string{"PATH", "HOME", "HOSTNAME", "TERM", "LANG", "LANGUAGE", "LC_ALL", "PWD", "SHLVL", "TZ",
	"USER", "SHELL", "GOPATH", "JAVA_HOME", "PYTHONPATH", "NODE_ENV", "GPG_KEY", "PYTHON_VERSION", "NODE_VERSION",
	"GOLANG_VERSION", "NGINX_VERSION", "PORT"}

// New returns a redactor that also removes the values of the given environment, as KEY=VALUE strings
// (the form Docker's inspect returns).
func New(env []string) *Redactor {
	r := &Redactor{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" || slices.Contains(harmless, strings.ToUpper(k)) {
			continue
		}
		switch {
		case len(v) >= minValueLen:
			r.values = append(r.values, v)
		case len(v) >= minSecretValueLen && secretKey(k):
			r.words = append(r.words, regexp.MustCompile(`\b`+regexp.QuoteMeta(v)+`\b`))
		}
	}
	// Longest first, so a value that contains another is removed whole.
	slices.SortFunc(r.values, func(a, b string) int { return len(b) - len(a) })
	r.values = slices.Compact(r.values)
	return r
}

func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, w := range []string{"pass", "pwd", "secret", "token", "key", "auth", "cred", "dsn", "url", "private", "cert", "sig"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

type pattern struct {
	re   *regexp.Regexp
	repl string
}

// patterns is compiled once per process: regexp values are immutable and safe to share.
var patterns = []pattern{
	// Credentials in URLs: scheme://user:pass@host, scheme://:pass@host.
	{regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://)([^:@/\s"']*):([^@/\s"']+)@`), "${1}${2}:" + Mask + "@"},
	// Slack tokens and webhooks.
	{regexp.MustCompile(`\bxox[abposre]-[A-Za-z0-9-]{8,}`), Mask},
	{regexp.MustCompile(`\bxapp-[A-Za-z0-9-]{8,}`), Mask},
	{regexp.MustCompile(`https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+`), "https://hooks.slack.com/services/" + Mask},
	// JWTs.
	{regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*`), Mask},
	// AWS access key ids.
	{regexp.MustCompile(`\b(AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}\b`), Mask},
	// Well-known API token shapes: OpenAI/Anthropic, GitHub, GitLab, Google, Stripe.
	{regexp.MustCompile(`\b(sk-(ant-)?[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}|glpat-[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{35}|[rs]k_(live|test)_[A-Za-z0-9]{16,})\b`), Mask},
	// Authorization headers: Bearer and Basic credentials.
	{regexp.MustCompile(`(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}`), "${1}${2}" + Mask},
	// Assignments of secret-looking keys, in key=value, key: value and JSON form.
	{regexp.MustCompile(`(?i)((?:["'])?[a-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credentials?|auth)[a-z0-9_.-]*(?:["'])?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s,;&"'}]+)`), "${1}" + Mask},
}

// pemBlock matches a private key block, including one cut off by the end of the log.
var pemBlock = regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----(?s:.*?)(-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|\z)`)

// String returns s with every secret replaced by Mask. A private key block becomes one Mask per line,
// so line counts are kept.
func (r *Redactor) String(s string) string {
	s = pemBlock.ReplaceAllStringFunc(s, func(m string) string {
		return strings.Repeat(Mask+"\n", strings.Count(m, "\n")) + Mask
	})
	for _, p := range patterns {
		s = p.re.ReplaceAllString(s, p.repl)
	}
	for _, v := range r.values {
		s = strings.ReplaceAll(s, v, Mask)
	}
	for _, w := range r.words {
		s = w.ReplaceAllString(s, Mask)
	}
	return s
}

// Lines redacts log lines as one text, so a secret spanning lines (a PEM block) is removed whole, and
// returns the same number of lines.
func (r *Redactor) Lines(lines []string) []string {
	if len(lines) == 0 {
		return nil
	}
	out := strings.Split(r.String(strings.Join(lines, "\n")), "\n")
	if len(out) > len(lines) {
		out = out[:len(lines)]
	}
	return out
}
