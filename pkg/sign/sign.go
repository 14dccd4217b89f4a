// Package sign authenticates the envelopes hemostat publishes on its streams: an HMAC-SHA256, under a
// keyring that signs with one key and verifies with any of its keys, so a key can be rotated without a
// moment where the agents disagree.
//
// What is authenticated. The MAC covers the exact bytes of the envelope as they travel (the stream entry's
// "event" field, Envelope.Marshal's output), framed with a version tag, the key id and the stream's name:
//
//	"hemostat-envelope-mac/v1" 0x00
//	uint32 big-endian len(key id)  key id
//	uint32 big-endian len(stream)  stream
//	uint32 big-endian len(event)   event
//
// Every field of the envelope (id, type, time, agent, host, incident, causation, payload) is covered, and
// the verifier checks the very bytes it will decode, so no re-encoding on either side can make them
// differ. The lengths make the framing unambiguous; the stream binds an entry to the stream it was written
// to, so a signed health alert copied into the request stream does not verify there.
//
// The MAC travels in a second field of the stream entry, Field, as "<key id>:<base64url MAC>".
package sign

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"strings"
	"sync"
)

// Field is the stream entry field that carries an envelope's MAC.
const Field = "mac"

// MinSecretLen is the shortest secret a key may have, in bytes: HMAC-SHA256's own output size.
const MinSecretLen = 32

// maxKeyIDLen bounds a key id.
const maxKeyIDLen = 32

// tag starts every MAC input: a MAC made for another purpose or version never verifies as this one.
const tag = "hemostat-envelope-mac/v1\x00"

// Reasons a verification fails; they are the reason label of hemostat_bus_rejected_total.
const (
	ReasonUnsigned   = "unsigned"    // the entry has no MAC
	ReasonUnknownKey = "unknown_key" // its key id is none of the keyring's
	ReasonBadMAC     = "bad_mac"     // the MAC is malformed or does not match: forged or altered
)

// Error says why an entry does not verify.
type Error struct {
	Reason string // one of the Reason* constants
	Detail string
}

func (e *Error) Error() string { return "unauthenticated entry: " + e.Reason + ": " + e.Detail }

// ErrUnauthenticated matches every *Error with errors.Is.
var ErrUnauthenticated = errors.New("unauthenticated entry")

// Is lets errors.Is(err, ErrUnauthenticated) match.
func (e *Error) Is(target error) bool { return target == ErrUnauthenticated }

// key is one secret and its id; its HMAC states are pooled, so signing and verifying allocate little.
type key struct {
	id   string
	pool sync.Pool // of *state
}

// state is one HMAC state and a buffer for the framing.
type state struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

func newKey(id string, secret []byte) *key {
	k := &key{id: id}
	s := append([]byte(nil), secret...)
	k.pool.New = func() any { return &state{h: hmac.New(sha256.New, s), buf: make([]byte, 0, 128)} }
	return k
}

// sum computes the MAC of an entry under the key and passes it to use, which must not keep it.
func (k *key) sum(stream string, raw []byte, use func(mac []byte)) {
	st := k.pool.Get().(*state)
	st.h.Reset()
	b := append(st.buf[:0], tag...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(k.id)))
	b = append(b, k.id...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(stream)))
	b = append(b, stream...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(raw)))
	st.h.Write(b)
	st.h.Write(raw)
	st.buf = b
	use(st.h.Sum(st.sum[:0]))
	k.pool.Put(st)
}

// Keyring holds the keys of a deployment: the first signs, every one verifies. A nil *Keyring signs
// nothing and verifies nothing (hemostat without --signing-key).
type Keyring struct {
	keys []*key
	byID map[string]*key
}

// Parse reads keys written "id:secret", separated by commas or newlines (a file may hold one a line); the
// first key signs. An id is 1 to 32 letters, digits, '-', '_' or '.'; a secret is at least MinSecretLen
// bytes and holds no comma. Errors name the key by its id or position, never its secret.
func Parse(s string) (*Keyring, error) {
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' })
	kr := &Keyring{byID: map[string]*key{}}
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		id, secret, ok := strings.Cut(p, ":")
		if !ok {
			return nil, fmt.Errorf("key %d: want id:secret", i+1)
		}
		if err := checkID(id); err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		if len(secret) < MinSecretLen {
			return nil, fmt.Errorf("key %q: secret is %d bytes, want at least %d (openssl rand -base64 32)", id, len(secret), MinSecretLen)
		}
		if _, dup := kr.byID[id]; dup {
			return nil, fmt.Errorf("key %q given twice", id)
		}
		k := newKey(id, []byte(secret))
		kr.keys = append(kr.keys, k)
		kr.byID[id] = k
	}
	if len(kr.keys) == 0 {
		return nil, errors.New("no key: want id:secret[,id2:secret2]")
	}
	return kr, nil
}

func checkID(id string) error {
	if id == "" || len(id) > maxKeyIDLen {
		return fmt.Errorf("key id %q: want 1 to %d characters", id, maxKeyIDLen)
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("key id %q: want letters, digits, '-', '_' or '.'", id)
		}
	}
	return nil
}

// SigningKey is the id of the key that signs.
func (kr *Keyring) SigningKey() string { return kr.keys[0].id }

// KeyIDs lists the ids of every key, the signing key first.
func (kr *Keyring) KeyIDs() []string {
	out := make([]string, len(kr.keys))
	for i, k := range kr.keys {
		out[i] = k.id
	}
	return out
}

// String names the keys, never their secrets.
func (kr *Keyring) String() string { return "keys " + strings.Join(kr.KeyIDs(), ",") }

// LogValue names the keys, never their secrets, when a keyring is logged.
func (kr *Keyring) LogValue() slog.Value { return slog.StringValue(kr.String()) }

// Sign returns the MAC field's value for an envelope's bytes published on stream.
func (kr *Keyring) Sign(stream string, raw []byte) string {
	k := kr.keys[0]
	var out string
	k.sum(stream, raw, func(mac []byte) {
		b := make([]byte, 0, len(k.id)+1+base64.RawURLEncoding.EncodedLen(len(mac)))
		b = append(b, k.id...)
		b = append(b, ':')
		out = string(base64.RawURLEncoding.AppendEncode(b, mac))
	})
	return out
}

// Verify checks the MAC field's value of an entry read from stream; "" is an unsigned entry. It returns an
// *Error, or nil when a key of the keyring made the MAC over exactly these bytes on this stream.
func (kr *Keyring) Verify(stream string, raw []byte, value string) error {
	if value == "" {
		return &Error{Reason: ReasonUnsigned, Detail: "no " + Field + " field"}
	}
	id, enc, ok := strings.Cut(value, ":")
	if !ok {
		return &Error{Reason: ReasonBadMAC, Detail: "want key-id:mac"}
	}
	k, found := kr.byID[id]
	if !found {
		if checkID(id) != nil {
			id = "(invalid)" // the id is the sender's text: do not repeat it when it is not an id
		}
		return &Error{Reason: ReasonUnknownKey, Detail: fmt.Sprintf("key id %q is not one of %s", id, strings.Join(kr.KeyIDs(), ","))}
	}
	var got [sha256.Size + 3]byte
	if base64.RawURLEncoding.DecodedLen(len(enc)) != sha256.Size {
		return &Error{Reason: ReasonBadMAC, Detail: fmt.Sprintf("key %s: MAC of %d characters, want %d", id, len(enc), base64.RawURLEncoding.EncodedLen(sha256.Size))}
	}
	n, err := base64.RawURLEncoding.Decode(got[:], []byte(enc))
	if err != nil || n != sha256.Size {
		return &Error{Reason: ReasonBadMAC, Detail: fmt.Sprintf("key %s: MAC is not base64url", id)}
	}
	var equal bool
	k.sum(stream, raw, func(mac []byte) { equal = hmac.Equal(got[:n], mac) })
	if !equal {
		return &Error{Reason: ReasonBadMAC, Detail: fmt.Sprintf("key %s: MAC does not match", id)}
	}
	return nil
}
