package redact

import (
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
