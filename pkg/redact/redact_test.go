package redact

import (
	"bytes"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestString(t *testing.T) {
	r := New([]string{
		"DB_PASSWORD=s3cr3t-Pa55",
		"STRIPE_KEY=abcd",
		"APP_NAME=checkout-service-eu",
		"DEBUG=true",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin",
		"PIN=1234",
	})
	tests := []struct {
		name    string
		in      string
		want    string
		secrets []string // must not survive
	}{
		{
			name:    "own env value",
			in:      "connecting with s3cr3t-Pa55 as checkout-service-eu",
			want:    "connecting with [REDACTED] as [REDACTED]",
			secrets: []string{"s3cr3t-Pa55"},
		},
		{
			name: "short secret-looking env value",
			in:   "charging with key abcd",
			want: "charging with key [REDACTED]",
		},
		{
			name: "short harmless values stay",
			in:   "DEBUG mode true, pin 1234, PATH /usr/local/bin",
			want: "DEBUG mode true, pin 1234, PATH /usr/local/bin",
		},
		{
			name:    "aws access key id",
			in:      "using credentials AKIAIOSFODNN7EXAMPLE for s3",
			want:    "using credentials [REDACTED] for s3",
			secrets: []string{"AKIAIOSFODNN7EXAMPLE"},
		},
		{
			name:    "aws secret assignment",
			in:      "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
			want:    "aws_secret_access_key=[REDACTED]",
			secrets: []string{"wJalrXUtnFEMI"},
		},
		{
			name:    "slack bot token",
			in:      "slack: posting with xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx failed",
			want:    "slack: posting with [REDACTED] failed",
			secrets: []string{"xoxb-"},
		},
		{
			name:    "slack webhook",
			in:      "POST https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX 404",
			want:    "POST https://hooks.slack.com/services/[REDACTED] 404",
			secrets: []string{"XXXXXXXXXXXXXXXX"},
		},
		{
			name:    "jwt",
			in:      "rejected token eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U (expired)",
			want:    "rejected token [REDACTED] (expired)",
			secrets: []string{"eyJhbGci", "dozjgNry"},
		},
		{
			name:    "bearer header",
			in:      `GET /api/orders Authorization: Bearer mF_9.B5f-4.1JqM status=401`,
			secrets: []string{"mF_9.B5f-4.1JqM"},
		},
		{
			name:    "password assignment",
			in:      "login failed user=admin password=hunter2hunter2 attempt=3",
			want:    "login failed user=admin password=[REDACTED] attempt=3",
			secrets: []string{"hunter2"},
		},
		{
			name:    "password in json",
			in:      `{"level":"error","msg":"bad config","db_password": "Tr0ub4dor&3", "port": 5432}`,
			want:    `{"level":"error","msg":"bad config","db_password": [REDACTED], "port": 5432}`,
			secrets: []string{"Tr0ub4dor"},
		},
		{
			name:    "postgres url",
			in:      "dial postgres://orders:Sup3rS3cret@db.internal:5432/orders?sslmode=disable: connection refused",
			want:    "dial postgres://orders:[REDACTED]@db.internal:5432/orders?sslmode=disable: connection refused",
			secrets: []string{"Sup3rS3cret"},
		},
		{
			name:    "redis url with empty user",
			in:      "redis: dial redis://:r3d1sPass@cache:6379/0 failed",
			want:    "redis: dial redis://:[REDACTED]@cache:6379/0 failed",
			secrets: []string{"r3d1sPass"},
		},
		{
			name:    "mongodb srv url",
			in:      "MongoServerError at mongodb+srv://app:m0ngoPw@cluster0.example.net/db",
			want:    "MongoServerError at mongodb+srv://app:[REDACTED]@cluster0.example.net/db",
			secrets: []string{"m0ngoPw"},
		},
		{
			name:    "api key and token assignments",
			in:      "config: api_key=0123456789abcdef api-token: 'zzz-yyy-xxx' SECRET=topsecretvalue",
			want:    "config: api_key=[REDACTED] api-token: [REDACTED] SECRET=[REDACTED]",
			secrets: []string{"0123456789abcdef", "zzz-yyy-xxx", "topsecretvalue"},
		},
		{
			name:    "vendor tokens",
			in:      "keys sk-ant-api03-AAAAAAAAAAAAAAAAAAAAAAAA ghp_0123456789abcdefghijABCDEFGHIJ0123456789",
			want:    "keys [REDACTED] [REDACTED]",
			secrets: []string{"sk-ant-", "ghp_"},
		},
		{
			name:    "openai and github tokens",
			in:      "OPENAI sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123 pushed with ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
			want:    "OPENAI [REDACTED] pushed with [REDACTED]",
			secrets: []string{"sk-proj-", "ghp_"},
		},
		{
			name:    "slack user and app tokens",
			in:      "tokens xoxp-1234-5678-abcdefgh xapp-1-A0123-456-abcdef",
			want:    "tokens [REDACTED] [REDACTED]",
			secrets: []string{"xoxp-", "xapp-"},
		},
		{
			name:    "github fine-grained and gitlab tokens",
			in:      "github_pat_11ABCDEFG0123456789abcdefghij and glpat-abcdefghij0123456789",
			want:    "[REDACTED] and [REDACTED]",
			secrets: []string{"github_pat_", "glpat-"},
		},
		{
			name:    "aws temporary key id",
			in:      "assumed role as ASIAY34FZKBOKMUTVV7A",
			want:    "assumed role as [REDACTED]",
			secrets: []string{"ASIAY34FZKBOKMUTVV7A"},
		},
		{
			name:    "basic auth header",
			in:      "Authorization: Basic dXNlcjpwYXNzd29yZA==",
			secrets: []string{"dXNlcjpwYXNzd29yZA"},
		},
		{
			name:    "password in a url with a slash",
			in:      "dial amqp://guest:pa/ss@rabbit:5672/ failed",
			want:    "dial amqp://guest:[REDACTED]@rabbit:5672/ failed",
			secrets: []string{"pa/ss"},
		},
		{
			name:    "password holding a comma",
			in:      "exec: password=abc,def user=admin",
			want:    "exec: password=[REDACTED] user=admin",
			secrets: []string{"abc", "def"},
		},
		{
			name:    "assignments in a query string",
			in:      "GET /login?user=bob&password=hunter22&next=/home&token=t0k3nvalue 302",
			want:    "GET /login?user=bob&password=[REDACTED]&next=/home&token=[REDACTED] 302",
			secrets: []string{"hunter22", "t0k3nvalue"},
		},
		{
			name: "compact json keeps the fields after a secret",
			in:   `{"level":"info","authenticated":true,"user_id":42,"api_key":k3y,"msg":"ok"}`,
			want: `{"level":"info","authenticated":[REDACTED],"user_id":42,"api_key":[REDACTED],"msg":"ok"}`,
		},
		{
			name:    "assignment closing an object or a list",
			in:      "rejected {password=hunter2hunter2}; retry (secret: s3cr3tsauce) [token=abcdefgh],",
			want:    "rejected {password=[REDACTED]}; retry (secret: [REDACTED]) [token=[REDACTED]],",
			secrets: []string{"hunter2", "s3cr3tsauce"},
		},
		{
			name:    "dotnet connection string",
			in:      "Server=db;Database=orders;User Id=sa;Password=Y0urStr0ng!Pass;",
			want:    "Server=db;Database=orders;User Id=sa;Password=[REDACTED];",
			secrets: []string{"Y0urStr0ng"},
		},
		{
			name: "ordinary log line untouched",
			in:   "2026-11-28T10:30:45Z INFO GET /health 200 1.2ms",
			want: "2026-11-28T10:30:45Z INFO GET /health 200 1.2ms",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := r.String(tt.in)
			if tt.want != "" {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("String() mismatch (-want +got):\n%s", diff)
				}
			}
			for _, s := range tt.secrets {
				if strings.Contains(got, s) {
					t.Errorf("String() = %q still contains %q", got, s)
				}
			}
		})
	}
}

func TestLinesPEM(t *testing.T) {
	lines := []string{
		"loading TLS key",
		"-----BEGIN RSA PRIVATE KEY-----",
		"MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
		"VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK",
		"-----END RSA PRIVATE KEY-----",
		"listening on :8443",
	}
	got := New(nil).Lines(lines)
	if len(got) != len(lines) {
		t.Fatalf("Lines() returned %d lines, want at most %d: %q", len(got), len(lines), got)
	}
	joined := strings.Join(got, "\n")
	for _, s := range []string{"MIIEow", "VTLw7o", "BEGIN RSA"} {
		if strings.Contains(joined, s) {
			t.Errorf("Lines() = %q still contains %q", joined, s)
		}
	}
	if !strings.Contains(joined, "listening on :8443") || !strings.Contains(joined, "loading TLS key") {
		t.Errorf("Lines() = %q lost the ordinary lines", joined)
	}
}

func TestLinesTruncatedPEM(t *testing.T) {
	got := New(nil).Lines([]string{"key:", "-----BEGIN PRIVATE KEY-----", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"})
	joined := strings.Join(got, "\n")
	if strings.Contains(joined, "MIIEvQ") {
		t.Errorf("Lines() = %q kept a cut-off private key", joined)
	}
}

func TestEnvValues(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		in      string
		want    string
		secrets []string
	}{
		{
			name:    "exec output with the container's token and the usual shapes",
			env:     []string{"API_TOKEN=xyzVALUEfromENV12345"},
			in:      "ok password=hunter2 url=postgres://app:s3cret@db/app Authorization: Bearer abcdefghijklmnop API=xyzVALUEfromENV12345",
			secrets: []string{"hunter2", "s3cret", "abcdefghijklmnop", "xyzVALUEfromENV12345"},
		},
		{
			name:    "a short password is removed even inside a word",
			env:     []string{"DB_PASSWORD=abc123"},
			in:      "login abc123 failed (xabc123y)",
			want:    "login [REDACTED] failed (x[REDACTED]y)",
			secrets: []string{"abc123"},
		},
		{
			name:    "a connection string in the environment is removed whole",
			env:     []string{"DATABASE_URL=postgres://app:pw@db.internal:5432/orders"},
			in:      "connecting to postgres://app:pw@db.internal:5432/orders",
			want:    "connecting to [REDACTED]",
			secrets: []string{"db.internal"},
		},
		{
			name: "harmless variables and short values stay",
			env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin", "HOME=/root", "DEBUG=true", "PORT=8080", "NODE_ENV=production"},
			in:   "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin HOME=/root debug true on 8080 in production",
			want: "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin HOME=/root debug true on 8080 in production",
		},
		{
			name:    "a long value of any other variable",
			env:     []string{"APP_NAME=checkout-service-eu", "=novalue", "BROKEN"},
			in:      "starting checkout-service-eu",
			want:    "starting [REDACTED]",
			secrets: []string{"checkout"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := New(tt.env).String(tt.in)
			if tt.want != "" {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("String() mismatch (-want +got):\n%s", diff)
				}
			}
			for _, s := range tt.secrets {
				if strings.Contains(got, s) {
					t.Errorf("String() = %q still contains %q", got, s)
				}
			}
		})
	}
}

func TestWithSecrets(t *testing.T) {
	for _, hook := range []string{
		"https://hooks.slack.com/services/T000/B000/s3cr3tPATHvalue", // also a shape
		"https://hooks.example.com/services/T000/B000/s3cr3tPATHvalue",
	} {
		r := New([]string{"DB_PASSWORD=s3cr3t-Pa55"}).WithSecrets(hook, "xoxb-123-456-abcdef", "", " ", "abc", "whsec_topsecret",
			"https://user:p4ss@hooks.example.net/v1/notify?sig=0123456789")
		tests := []struct{ in, mustNot string }{
			{`Post "` + hook + `": dial tcp: refused`, "s3cr3tPATHvalue"},
			{"url=" + strings.ReplaceAll(hook, "/", "%2F"), "s3cr3tPATHvalue"},
			{"url=" + url.QueryEscape(hook), "s3cr3tPATHvalue"},
			{"Bearer xoxb-123-456-abcdef", "xoxb-123-456-abcdef"},
			{"key whsec_topsecret", "whsec_topsecret"},
			{"path services/T000/B000/s3cr3tPATHvalue only", "s3cr3tPATHvalue"},
			{"query sig=0123456789 only", "0123456789"},
			{"user user:p4ss only", "p4ss"},
			{"the env is kept: s3cr3t-Pa55", "s3cr3t-Pa55"},
		}
		for _, tt := range tests {
			t.Run(tt.mustNot, func(t *testing.T) {
				got := r.String(tt.in)
				if strings.Contains(got, tt.mustNot) || !strings.Contains(got, Mask) {
					t.Errorf("String(%q) = %q", tt.in, got)
				}
			})
		}
		base := errors.New("post " + hook + " failed")
		if err := r.Error(base); strings.Contains(err.Error(), "s3cr3t") || !errors.Is(err, base) {
			t.Errorf("Error() = %v: leaks, or lost its chain", err)
		}
	}
	r := New(nil).WithSecrets("abc", "whsec_topsecret")
	if got := r.String("abc at hooks.example.com:443"); got != "abc at hooks.example.com:443" {
		t.Errorf("a short secret or a host was removed: %q", got)
	}
	var none *Redactor
	if got := none.WithSecrets("whsec_topsecret").String("key whsec_topsecret"); got != "key "+Mask {
		t.Errorf("nil.WithSecrets: %q", got)
	}
}

func TestNilRedactorRemovesTheShapes(t *testing.T) {
	var r *Redactor
	if got, want := r.String("password=hunter22 ok"), "password=[REDACTED] ok"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestError(t *testing.T) {
	r := New(nil).WithSecrets("whsec_topsecret")
	base := errors.New("post https://hooks.example.com/x?key=whsec_topsecret failed")
	err := r.Error(base)
	if strings.Contains(err.Error(), "topsecret") {
		t.Errorf("Error() leaks: %v", err)
	}
	if !errors.Is(err, base) {
		t.Error("redacted error lost its chain")
	}
	plain := errors.New("connection refused")
	if got := r.Error(plain); got != plain {
		t.Errorf("an error without secrets was wrapped: %#v", got)
	}
	if r.Error(nil) != nil {
		t.Error("Error(nil) != nil")
	}
}

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	r := New(nil).WithSecrets("whsec_topsecret")
	log := slog.New(r.Handler(slog.NewTextHandler(&buf, nil))).With("sink", "whsec_topsecret")
	log.WithGroup("g").Warn("sending with whsec_topsecret failed",
		"err", errors.New("401 for whsec_topsecret"),
		"url", stringer("https://x.example.com/?k=whsec_topsecret"),
		"any", []string{"whsec_topsecret"},
		slog.Group("inner", "token", "whsec_topsecret"),
		"n", 3)
	got := buf.String()
	if strings.Contains(got, "topsecret") {
		t.Errorf("log line leaks: %s", got)
	}
	if !strings.Contains(got, "g.n=3") || !strings.Contains(got, "sink="+Mask) {
		t.Errorf("log line lost its attributes: %s", got)
	}
}

type stringer string

func (s stringer) String() string { return string(s) }
