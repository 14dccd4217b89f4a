package conn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// pki is a test certificate authority and the PEM files it issued, in a temporary directory.
type pki struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	CA   string // the CA's certificate file
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &pki{dir: t.TempDir(), cert: cert, key: key}
	p.CA = p.write(t, name+"-ca.crt", "CERTIFICATE", der)
	return p
}

func (p *pki) write(t *testing.T, file, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, file)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue signs a certificate for name (a server's, valid for 127.0.0.1 and localhost, or a client's) and
// returns its certificate and key files.
func (p *pki) issue(t *testing.T, name string, server bool) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		// Redis uses its server certificate as a client too (replication, sentinel to master).
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return p.write(t, name+".crt", "CERTIFICATE", der), p.write(t, name+".key", "PRIVATE KEY", kder)
}

// tlsArgs are the redis-server (or redis-sentinel) settings of a TLS port with the server's certificate
// from p.
func tlsArgs(t *testing.T, p *pki, port int, authClients string) []string {
	cert, key := p.issue(t, "redis-"+strconv.Itoa(port), true)
	return []string{"--tls-port", strconv.Itoa(port), "--tls-cert-file", cert, "--tls-key-file", key,
		"--tls-ca-cert-file", p.CA, "--tls-auth-clients", authClients}
}

func check(t *testing.T, o conn.Options) error {
	t.Helper()
	c, err := conn.Open(o)
	if err != nil {
		return err
	}
	defer c.Close()
	// Long enough for go-redis's five dial attempts to fail on a loaded machine: cut short, the error is the
	// deadline's instead of the handshake's.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Check(ctx); err != nil {
		return err
	}
	if err := c.Client().Set(ctx, "tls-test", "ok", time.Minute).Err(); err != nil {
		return err
	}
	return nil
}

// TestTLS: a redis-server with a TLS port and a CA made here. The right CA and a client certificate
// connect (mutual TLS); the wrong CA, a missing client certificate, a foreign client certificate and a name
// the certificate lacks each fail with a message that says what to change.
func TestTLS(t *testing.T) {
	ca, other := newPKI(t, "test"), newPKI(t, "other")
	tlsPort := testenv.FreePort(t)
	srv := testenv.StartRedisWith(t, tlsArgs(t, ca, tlsPort, "yes")...)
	admin := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(srv.Port)})
	defer admin.Close()
	url := "rediss://127.0.0.1:" + strconv.Itoa(tlsPort) + "/0"
	cert, key := ca.issue(t, "hemostat", false)
	foreignCert, foreignKey := other.issue(t, "intruder", false)

	t.Run("mutual TLS", func(t *testing.T) {
		c, err := conn.Open(conn.Options{URL: url, TLS: conn.TLSFiles{CA: ca.CA, Cert: cert, Key: key}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Check(context.Background()); err != nil {
			t.Fatalf("mutual TLS: %v", err)
		}
		if !c.TLS() || !c.MutualTLS() || c.Mode() != conn.ModeStandalone {
			t.Errorf("TLS %v mutual %v mode %s", c.TLS(), c.MutualTLS(), c.Mode())
		}
		if err := c.Client().Set(context.Background(), "k", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		// The write went over TLS to the same server.
		if got := admin.Get(context.Background(), "k").Val(); got != "v" {
			t.Errorf("k = %q", got)
		}
		info, err := c.ServerInfo(context.Background(), "server")
		if err != nil || info["redis_version"] == "" {
			t.Errorf("INFO over TLS: %v", err)
		}
	})
	for _, tc := range []struct {
		name string
		o    conn.Options
		says []string
	}{
		{"wrong CA", conn.Options{URL: url, TLS: conn.TLSFiles{CA: other.CA, Cert: cert, Key: key}},
			[]string{"certificate signed by unknown authority", "--redis-tls-ca " + other.CA}},
		{"the system's CAs", conn.Options{URL: url, TLS: conn.TLSFiles{Cert: cert, Key: key}},
			[]string{"certificate signed by unknown authority", "name its CA with --redis-tls-ca"}},
		{"no client certificate", conn.Options{URL: url, TLS: conn.TLSFiles{CA: ca.CA}},
			[]string{"give a client certificate with --redis-tls-cert and --redis-tls-key"}},
		{"client certificate of another CA", conn.Options{URL: url, TLS: conn.TLSFiles{CA: ca.CA, Cert: foreignCert, Key: foreignKey}},
			[]string{"refused the client certificate --redis-tls-cert " + foreignCert}},
		{"a name the certificate lacks", conn.Options{URL: url, TLS: conn.TLSFiles{CA: ca.CA, Cert: cert, Key: key, ServerName: "redis.example"}},
			[]string{"redis.example", "--redis-tls-server-name"}},
		{"TLS to the plain port", conn.Options{URL: "rediss://127.0.0.1:" + strconv.Itoa(srv.Port) + "/0", TLS: conn.TLSFiles{CA: ca.CA}},
			[]string{"no TLS handshake: is this Redis's tls-port"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := check(t, tc.o)
			if !errors.Is(err, conn.ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not say %q:\n%v", s, err)
				}
			}
		})
	}
	t.Run("server not verifying clients", func(t *testing.T) {
		if err := admin.ConfigSet(context.Background(), "tls-auth-clients", "no").Err(); err != nil {
			t.Fatal(err)
		}
		defer admin.ConfigSet(context.Background(), "tls-auth-clients", "yes")
		if err := check(t, conn.Options{URL: url, TLS: conn.TLSFiles{CA: ca.CA}}); err != nil {
			t.Errorf("server-only TLS: %v", err)
		}
		if err := check(t, conn.Options{URL: url, TLS: conn.TLSFiles{CA: other.CA}}); err == nil ||
			!strings.Contains(err.Error(), "unknown authority") {
			t.Errorf("the wrong CA still fails without client certificates: %v", err)
		}
	})
}

// TestTLSOptionErrors: bad TLS settings are refused before anything is dialled, naming the flag and file.
func TestTLSOptionErrors(t *testing.T) {
	ca := newPKI(t, "test")
	cert, key := ca.issue(t, "hemostat", false)
	missing := filepath.Join(t.TempDir(), "nope.crt")
	for _, tc := range []struct {
		name string
		o    conn.Options
		says string
	}{
		{"CA file missing", conn.Options{URL: "rediss://127.0.0.1:1/0", TLS: conn.TLSFiles{CA: missing}}, "--redis-tls-ca: open " + missing},
		{"CA file not PEM", conn.Options{URL: "rediss://127.0.0.1:1/0", TLS: conn.TLSFiles{CA: key + "x"}}, "--redis-tls-ca"},
		{"CA file without a certificate", conn.Options{URL: "rediss://127.0.0.1:1/0", TLS: conn.TLSFiles{CA: key}}, "no PEM certificate"},
		{"certificate without key", conn.Options{URL: "rediss://127.0.0.1:1/0", TLS: conn.TLSFiles{Cert: cert}}, "needs --redis-tls-key"},
		{"key without certificate", conn.Options{URL: "rediss://127.0.0.1:1/0", TLS: conn.TLSFiles{Key: key}}, "needs --redis-tls-cert"},
		{"key of another certificate", conn.Options{URL: "rediss://127.0.0.1:1/0", TLS: conn.TLSFiles{Cert: cert, Key: ca.CA}}, "--redis-tls-key " + ca.CA},
		{"TLS files with a plain URL", conn.Options{URL: "redis://127.0.0.1:1/0", TLS: conn.TLSFiles{CA: ca.CA}}, "need a rediss:// URL"},
		{"master without sentinels", conn.Options{URL: "redis://127.0.0.1:1/0", MasterName: "m"}, "needs --redis-sentinels"},
		{"sentinels without master", conn.Options{URL: "redis://127.0.0.1:1/0", Sentinels: []string{"127.0.0.1:26379"}}, "needs --redis-master"},
		{"sentinel not host:port", conn.Options{URL: "redis://127.0.0.1:1/0", Sentinels: []string{"sentinel"}, MasterName: "m"}, `"sentinel" is not host:port`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := conn.Open(tc.o)
			if err == nil {
				c.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("err = %v, want it to say %q", err, tc.says)
			}
		})
	}
}
