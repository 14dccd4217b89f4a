package cmd

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/hemostat/hemostat/pkg/sign"
)

// SigningOptions are the global flags that authenticate the bus: every envelope an agent publishes is
// signed, every entry it consumes verified before it is decoded (pkg/sign, pkg/bus). They are kept
// together here, apart from the other global flags.
type SigningOptions struct {
	Key           string        // --signing-key: id:secret[,id2:secret2], the first signs, all verify
	MaxRequestAge time.Duration // --max-request-age: the responder refuses older requests (replays)

	keys *sign.Keyring // parsed by load; nil without a key
}

// DefaultMaxRequestAge is --max-request-age's default.
const DefaultMaxRequestAge = 10 * time.Minute

// addSigningFlags adds the signing flags to the root's persistent flags.
func addSigningFlags(pf *pflag.FlagSet, o *SigningOptions) {
	pf.StringVar(&o.Key, "signing-key", "", "sign and verify every bus entry (HMAC-SHA256): id:secret, secrets of 32+ bytes; "+
		"during a rotation new:secret,old:secret (the first signs, every one verifies)")
	markSecret(pf, "signing-key")
	pf.DurationVar(&o.MaxRequestAge, "max-request-age", DefaultMaxRequestAge,
		"with --signing-key, the responder refuses requests older than this, and handled ones sent again (replays); 0: off")
}

// load parses the keys; an error names the flag and never shows a secret.
func (o *SigningOptions) load() error {
	if o.MaxRequestAge < 0 {
		return UsageError("--max-request-age %s: want 0 (off) or more", o.MaxRequestAge)
	}
	if o.Key == "" {
		o.keys = nil
		return nil
	}
	kr, err := sign.Parse(o.Key)
	if err != nil {
		return UsageError("--signing-key (or HEMOSTAT_SIGNING_KEY, HEMOSTAT_SIGNING_KEY_FILE): %v", err)
	}
	o.keys = kr
	return nil
}

// Keys is the keyring in force, nil without --signing-key.
func (o *SigningOptions) Keys() *sign.Keyring { return o.keys }

// requestAge is the responder's replay window: --max-request-age with a key, off without one (without a
// key hemostat behaves as it always did).
func (o *SigningOptions) requestAge() time.Duration {
	if o.keys == nil {
		return 0
	}
	return o.MaxRequestAge
}
