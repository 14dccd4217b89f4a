// Package redact removes secrets from text before it leaves hemostat: container logs and the LLM prompts
// built from them (pkg/analyze), exec output recorded in remediation results (pkg/respond), and the errors
// and log lines of the notification sinks (pkg/alert). A Redactor always removes the shapes secrets
// usually take (cloud keys, chat and API tokens, JWTs, bearer headers, passwords in assignments,
// credentials in URLs and connection strings, private key blocks); it also removes literal values it is
// given: a container's environment (New), or credentials the caller holds (WithSecrets).
package redact

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Mask replaces every secret.
const Mask = "[REDACTED]"

// Redactor removes secrets from text. It is safe for concurrent use; the nil Redactor removes the shapes
// only.
type Redactor struct {
	values []string         // literal values to remove, longest first
	words  []*regexp.Regexp // short values, removed only as whole words
}

// Lengths under which an environment value is not removed as such: short non-secret values would blank
// out half a log.
const (
	minValueLen       = 8 // any value (but those of harmless variables)
	minSecretValueLen = 6 // the value of a variable the assignment pattern treats as secret (DB_PASSWORD)
	minSecretWordLen  = 4 // the value of a secret-looking variable (STRIPE_KEY), as a whole word only
	minLiteralLen     = 4 // a secret given to WithSecrets
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
		case len(v) >= minValueLen, len(v) >= minSecretValueLen && secretAssignmentKey.MatchString(k):
			r.values = append(r.values, v)
		case len(v) >= minSecretWordLen && secretKey(k):
			r.words = append(r.words, regexp.MustCompile(`\b`+regexp.QuoteMeta(v)+`\b`))
		}
	}
	r.sortValues()
	return r
}

// WithSecrets returns a redactor that also removes the given secrets (tokens, signing keys, webhook URLs)
// wherever they appear. For a URL it also removes its escaped forms, its path and query (a Slack webhook's
// credential is its path) and its user information, keeping the scheme and host readable. Secrets shorter
// than four bytes are ignored.
func (r *Redactor) WithSecrets(secrets ...string) *Redactor {
	out := &Redactor{}
	if r != nil {
		out.values = slices.Clone(r.values)
		out.words = slices.Clone(r.words)
	}
	add := func(s string) {
		if len(s) >= minLiteralLen {
			out.values = append(out.values, s)
		}
	}
	for _, s := range secrets {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		add(s)
		add(url.QueryEscape(s))
		add(url.PathEscape(s))
		if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
			add(strings.Trim(u.EscapedPath(), "/"))
			add(u.RawQuery)
			if u.User != nil {
				add(u.User.String())
			}
		}
	}
	out.sortValues()
	return out
}

// sortValues puts the longest value first, so a value that contains another is removed whole.
func (r *Redactor) sortValues() {
	slices.SortStableFunc(r.values, func(a, b string) int { return len(b) - len(a) })
	r.values = slices.Compact(r.values)
}

// secretKey reports whether an environment variable's name looks like it holds a secret.
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
	// Credentials in URLs and connection strings: scheme://user:pass@host, scheme://:pass@host. The
	// password may hold a slash; it ends at the last @ before a space or a quote.
	{regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://)([^:@/\s"']*):([^@\s"']+)@`), "${1}${2}:" + Mask + "@"},
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
}

// secretWords are the names of assigned values that are secrets: password=..., "api_key": ...
const secretWords = `password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credentials?|auth`

// secretAssignmentKey matches an environment variable name whose value is a secret however short.
var secretAssignmentKey = regexp.MustCompile(`(?i)` + secretWords)

// assignment matches a secret-looking key and its value, in key=value, key: value and JSON form. The value
// is quoted, or runs to the next space (see unquotedEnd).
var assignment = regexp.MustCompile(`(?i)((?:["'])?[a-z0-9_.-]*(?:` + secretWords + `)[a-z0-9_.-]*(?:["'])?\s*[:=]\s*)("[^"]*"|'[^']*'|\S+)`)

// nextField matches the start of the key of another assignment, as it follows a separator in compact
// forms (a=1,b=2; a=1&b=2; "a":1,"b":2).
var nextField = regexp.MustCompile(`^["']?[A-Za-z0-9_.-]+["']?[:=]`)

// unquotedEnd returns where an unquoted value ends within v, a run without spaces: at a separator (, ; &)
// that is followed by another key, or else before the closing punctuation that ends the run ("}", ")",
// "]", ",", ";"). A value holding a comma is thereby removed whole, and the fields after it are kept.
func unquotedEnd(v string) int {
	for i := 0; i < len(v); i++ {
		if strings.IndexByte(",;&", v[i]) >= 0 && nextField.MatchString(v[i+1:]) {
			return i
		}
	}
	return len(strings.TrimRight(v, ",;})]"))
}

// redactAssignments replaces the values of secret-looking assignments.
func redactAssignments(s string) string {
	var b strings.Builder
	pos := 0
	for pos < len(s) {
		m := assignment.FindStringSubmatchIndex(s[pos:])
		if m == nil {
			break
		}
		keyEnd, valStart, valEnd := pos+m[3], pos+m[4], pos+m[5]
		if v := s[valStart:valEnd]; !quoted(v) {
			valEnd = valStart + unquotedEnd(v)
		}
		b.WriteString(s[pos:keyEnd])
		if valEnd > valStart {
			b.WriteString(Mask)
		}
		pos = max(valEnd, keyEnd)
	}
	if pos == 0 {
		return s
	}
	b.WriteString(s[pos:])
	return b.String()
}

// quoted reports whether v is a whole quoted string.
func quoted(v string) bool {
	return len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0]
}

// pemBlock matches a private key block, including one cut off by the end of the text.
var pemBlock = regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----(?s:.*?)(-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|\z)`)

// String returns s with every secret replaced by Mask. A private key block becomes one Mask per line,
// so line counts are kept. The literal values go before the shapes, so a value that holds a shape (a
// connection string in DATABASE_URL) is removed whole.
func (r *Redactor) String(s string) string {
	s = pemBlock.ReplaceAllStringFunc(s, func(m string) string {
		return strings.Repeat(Mask+"\n", strings.Count(m, "\n")) + Mask
	})
	if r != nil {
		for _, v := range r.values {
			s = strings.ReplaceAll(s, v, Mask)
		}
		for _, w := range r.words {
			s = w.ReplaceAllString(s, Mask)
		}
	}
	for _, p := range patterns {
		s = p.re.ReplaceAllString(s, p.repl)
	}
	return redactAssignments(s)
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
