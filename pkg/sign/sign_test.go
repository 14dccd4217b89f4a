package sign_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/hemostat/hemostat/pkg/sign"
)

const (
	secretA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" // 44 bytes, like openssl rand -base64 32
	secretB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	stream  = "hemostat:remediation_needed"
)

var raw = []byte(`{"id":"0193","schema":1,"event_type":"remediation_needed","timestamp":"2026-11-28T10:00:00Z","agent":"analyze","host":"node-a","incident":"","causation_id":"","data":{"container":"web-1","action":"restart"}}`)

func mustParse(t testing.TB, s string) *sign.Keyring {
	t.Helper()
	kr, err := sign.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func reason(err error) string {
	var e *sign.Error
	if errors.As(err, &e) {
		return e.Reason
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return ""
}

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		ids     []string
		wantErr string
	}{
		{in: "k1:" + secretA, ids: []string{"k1"}},
		{in: "new:" + secretB + ",old:" + secretA, ids: []string{"new", "old"}},
		{in: " new:" + secretB + "\nold:" + secretA + "\n", ids: []string{"new", "old"}}, // a file, one a line
		{in: "k.1_a-B:" + secretA + ":with:colons", ids: []string{"k.1_a-B"}},            // the secret is all after the first colon
		{in: "", wantErr: "no key"},
		{in: secretA, wantErr: "key 1: want id:secret"},
		{in: "k1:short", wantErr: `key "k1": secret is 5 bytes, want at least 32`},
		{in: ":" + secretA, wantErr: `key 1: key id ""`},
		{in: "k/1:" + secretA, wantErr: `key id "k/1"`},
		{in: "k1:" + secretA + ",k1:" + secretB, wantErr: `key "k1" given twice`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			kr, err := sign.Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				for _, s := range []string{secretA, secretB, "short"} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error %q shows a secret", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(kr.KeyIDs(), ","); got != strings.Join(tt.ids, ",") {
				t.Errorf("ids = %s, want %s", got, strings.Join(tt.ids, ","))
			}
			if kr.SigningKey() != tt.ids[0] {
				t.Errorf("signing key = %s, want %s", kr.SigningKey(), tt.ids[0])
			}
			if strings.Contains(kr.String(), secretA) || strings.Contains(kr.LogValue().String(), secretA) {
				t.Errorf("the keyring's text shows its secret: %s", kr)
			}
		})
	}
}

// TestCanonicalEncoding pins the MAC input: the tag, then the key id, the stream and the envelope's bytes,
// each after its length as a big-endian uint32. A change here breaks every deployment mid-upgrade.
func TestCanonicalEncoding(t *testing.T) {
	kr := mustParse(t, "k1:"+secretA)
	msg := []byte("hemostat-envelope-mac/v1\x00")
	for _, p := range []string{"k1", stream, string(raw)} {
		n := len(p)
		msg = append(msg, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		msg = append(msg, p...)
	}
	h := hmac.New(sha256.New, []byte(secretA))
	h.Write(msg)
	want := "k1:" + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
	if got := kr.Sign(stream, raw); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	kr := mustParse(t, "k1:"+secretA)
	good := kr.Sign(stream, raw)
	id, enc, _ := strings.Cut(good, ":")
	flipped := []byte(enc)
	flipped[3] ^= 1
	if flipped[3] == '-' || flipped[3] == '_' { // keep it base64url
		flipped[3] = 'A'
	}
	other := mustParse(t, "k1:"+secretB) // same id, another secret: a guess of the id is not enough
	tests := []struct {
		name   string
		stream string
		raw    []byte
		mac    string
		want   string
	}{
		{"signed", stream, raw, good, ""},
		{"unsigned", stream, raw, "", sign.ReasonUnsigned},
		{"no key id", stream, raw, enc, sign.ReasonBadMAC},
		{"unknown key", stream, raw, "k9:" + enc, sign.ReasonUnknownKey},
		{"forged with another secret", stream, raw, other.Sign(stream, raw), sign.ReasonBadMAC},
		{"one bit of the MAC", stream, raw, id + ":" + string(flipped), sign.ReasonBadMAC},
		{"truncated", stream, raw, good[:len(good)-2], sign.ReasonBadMAC},
		{"not base64", stream, raw, id + ":" + strings.Repeat("*", len(enc)), sign.ReasonBadMAC},
		{"payload altered", stream, []byte(strings.Replace(string(raw), "web-1", "db-1", 1)), good, sign.ReasonBadMAC},
		{"one byte appended", stream, append(append([]byte(nil), raw...), ' '), good, sign.ReasonBadMAC},
		{"moved to another stream", "hemostat:health_alert", raw, good, sign.ReasonBadMAC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := kr.Verify(tt.stream, tt.raw, tt.mac)
			if got := reason(err); got != tt.want {
				t.Errorf("Verify = %v, want reason %q", err, tt.want)
			}
			if err != nil && !errors.Is(err, sign.ErrUnauthenticated) {
				t.Errorf("%v does not match ErrUnauthenticated", err)
			}
		})
	}
}

// TestRotation follows a rotation from key old to key new: while every agent holds both keys, entries
// signed by either verify, so agents may be restarted in any order.
func TestRotation(t *testing.T) {
	before := mustParse(t, "old:"+secretA)
	during := mustParse(t, "old:"+secretA+",new:"+secretB)   // step 1: add the new key, the old one still signs
	switched := mustParse(t, "new:"+secretB+",old:"+secretA) // step 2: the new key signs, the old one verifies
	after := mustParse(t, "new:"+secretB)                    // step 3: the old key is gone
	signers := map[string]*sign.Keyring{"before": before, "during": during, "switched": switched, "after": after}
	verifies := map[[2]string]bool{
		{"before", "before"}: true, {"before", "during"}: true, {"before", "switched"}: true, {"before", "after"}: false,
		{"during", "before"}: true, {"during", "during"}: true, {"during", "switched"}: true, {"during", "after"}: false,
		{"switched", "before"}: false, {"switched", "during"}: true, {"switched", "switched"}: true, {"switched", "after"}: true,
		{"after", "before"}: false, {"after", "during"}: true, {"after", "switched"}: true, {"after", "after"}: true,
	}
	for pair, want := range verifies {
		mac := signers[pair[0]].Sign(stream, raw)
		err := signers[pair[1]].Verify(stream, raw, mac)
		if (err == nil) != want {
			t.Errorf("signed %s, verified %s: %v, want ok=%v", pair[0], pair[1], err, want)
		}
		if err != nil && reason(err) != sign.ReasonUnknownKey {
			t.Errorf("signed %s, verified %s: reason %q, want %q", pair[0], pair[1], reason(err), sign.ReasonUnknownKey)
		}
	}
	if got := switched.Sign(stream, raw); !strings.HasPrefix(got, "new:") {
		t.Errorf("after the switch the MAC is %s, want one by key new", got)
	}
}

// TestUnknownKeyIDIsNotEchoed: a key id that is not an id (terminal escapes, long text) is not repeated in
// the reason that goes to logs and the dead letter stream.
func TestUnknownKeyIDIsNotEchoed(t *testing.T) {
	kr := mustParse(t, "k1:"+secretA)
	err := kr.Verify(stream, raw, "\x1b[31mevil:AAAA")
	if reason(err) != sign.ReasonUnknownKey || strings.Contains(err.Error(), "\x1b") {
		t.Errorf("Verify = %q", err)
	}
}
