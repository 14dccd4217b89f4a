package conn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
)

// TLSFiles are the certificates of a TLS connection to Redis, as PEM files.
type TLSFiles struct {
	CA         string // the CA that signed the server's certificate; default: the system's pool
	Cert, Key  string // the client's certificate and key, for a server that verifies clients (tls-auth-clients)
	ServerName string // the name the server's certificate must carry; default: the host dialled
}

// set reports whether any file or name is given.
func (f TLSFiles) set() bool { return f.CA != "" || f.Cert != "" || f.Key != "" || f.ServerName != "" }

// tlsConfig is the TLS configuration of the options, nil for a plain connection. ro is the parsed URL:
// rediss:// comes with a configuration that names the URL's host.
func (o Options) tlsConfig(ro *redis.Options) (*tls.Config, error) {
	f := o.TLS
	if ro.TLSConfig == nil && f.set() && o.Mode() == ModeStandalone {
		return nil, fmt.Errorf("--redis-tls-* need a rediss:// URL: %s is plain redis://", Redact(o.URL))
	}
	if ro.TLSConfig == nil && !f.set() {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.Mode() == ModeStandalone {
		tc.ServerName = ro.TLSConfig.ServerName // the URL's host
	} // through Sentinel each address dialled names itself (tls.Dial fills ServerName from it)
	if f.ServerName != "" {
		tc.ServerName = f.ServerName
	}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("--redis-tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--redis-tls-ca %s: no PEM certificate in the file", f.CA)
		}
		tc.RootCAs = pool
	}
	switch {
	case f.Cert != "" && f.Key != "":
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("--redis-tls-cert %s, --redis-tls-key %s: %w", f.Cert, f.Key, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	case f.Cert != "":
		return nil, fmt.Errorf("--redis-tls-cert %s needs --redis-tls-key: the client certificate's private key", f.Cert)
	case f.Key != "":
		return nil, fmt.Errorf("--redis-tls-key %s needs --redis-tls-cert: the client certificate", f.Key)
	}
	return tc, nil
}

// explainTLS says what to change when err is a TLS handshake failure, or "" for any other error.
func (o Options) explainTLS(err error) string {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var inv x509.CertificateInvalidError
	s := err.Error()
	switch {
	case errors.As(err, &unknown) && o.TLS.CA != "":
		return fmt.Sprintf(" (the server's certificate is not signed by the CA in --redis-tls-ca %s)", o.TLS.CA)
	case errors.As(err, &unknown):
		return " (the server's certificate is not signed by a CA this system trusts: name its CA with --redis-tls-ca)"
	case errors.As(err, &host):
		return " (the server's certificate does not carry the name dialled: set --redis-tls-server-name to a name it carries)"
	case errors.As(err, &inv):
		return " (the server's certificate is not valid: expired, not yet valid, or not for a server)"
	case strings.Contains(s, "certificate required") || strings.Contains(s, "bad certificate") && o.TLS.Cert == "":
		return " (the server verifies clients: give a client certificate with --redis-tls-cert and --redis-tls-key)"
	case strings.Contains(s, "bad certificate") || strings.Contains(s, "unknown certificate authority"):
		return fmt.Sprintf(" (the server refused the client certificate --redis-tls-cert %s: it is not signed by a CA the server trusts, tls-ca-cert-file)", o.TLS.Cert)
	case strings.Contains(s, "first record does not look like a TLS handshake"):
		return " (the server speaks plain Redis on this port: use redis://, or its tls-port)"
	case o.TLSEnabled() && (errors.Is(err, context.DeadlineExceeded) || strings.Contains(s, "i/o timeout")):
		// A plain Redis port reads a TLS hello as an unfinished command and says nothing.
		return " (no TLS handshake: is this Redis's tls-port, or its plain port?)"
	}
	return ""
}

// TLSEnabled reports whether a connection with these options is encrypted: a rediss:// URL, or any TLS
// file or name given.
func (o Options) TLSEnabled() bool {
	return o.TLS.set() || strings.HasPrefix(strings.ToLower(strings.TrimSpace(o.URL)), "rediss://")
}
