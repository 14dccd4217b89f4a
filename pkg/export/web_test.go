package export_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/hemostat/hemostat/pkg/export"
	"os/exec"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key into dir and returns their paths
// and a pool that trusts it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hemostat test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	write(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	write(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestWebConfigProtectsMetricsAndHealthz serves the exporter behind a web configuration with TLS and basic
// auth, as node_exporter's --web.config.file does: nothing is served without the password or over plain HTTP.
func TestWebConfigProtectsMetricsAndHealthz(t *testing.T) {
	e := open(t)
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-scrape"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "web.yml")
	write(t, cfg, "tls_server_config:\n  cert_file: "+certFile+"\n  key_file: "+keyFile+"\nbasic_auth_users:\n  prometheus: "+string(hash)+"\n")
	if err := export.ValidateWebConfig(cfg); err != nil {
		t.Fatalf("ValidateWebConfig() = %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	exp := export.New(ctx, export.Options{Listen: "127.0.0.1:0", Instance: "w1", WebConfigFile: cfg}, sourcesOf(e.st, e.bus))
	l, err := exp.Listen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- exp.Run(ctx, l, e.bus) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	addr := l.Addr().String()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(url, user, pass string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	for _, path := range []string{"/metrics", "/healthz"} {
		url := "https://" + addr + path
		if code, _, err := get(url, "", ""); err != nil || code != http.StatusUnauthorized {
			t.Errorf("%s without credentials: %d, %v; want 401", path, code, err)
		}
		if code, _, err := get(url, "prometheus", "wrong"); err != nil || code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong password: %d, %v; want 401", path, code, err)
		}
		code, body, err := get(url, "prometheus", "s3cret-scrape")
		if err != nil || code != http.StatusOK {
			t.Fatalf("%s with the password: %d, %v; want 200", path, code, err)
		}
		if path == "/metrics" && !strings.Contains(body, "hemostat_export_redis_up") {
			t.Errorf("/metrics body lacks hemostat_export_redis_up:\n%.300s", body)
		}
		// Plain HTTP gets no metrics: the server speaks TLS only.
		if code, body, err := get("http://"+addr+path, "prometheus", "s3cret-scrape"); err == nil && code == http.StatusOK {
			t.Errorf("%s over plain HTTP: %d %.100q", path, code, body)
		}
	}
	// A client that does not trust the certificate fails the handshake.
	untrusting := &http.Client{Timeout: 5 * time.Second}
	if _, err := untrusting.Get("https://" + addr + "/metrics"); err == nil {
		t.Error("a client without the CA completed the handshake")
	} else if !errors.As(err, new(*tls.CertificateVerificationError)) && !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted handshake error = %v, want a certificate error", err)
	}
}

func TestValidateWebConfigNamesTheProblem(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, yaml, want string
	}{
		{"missing key file", "tls_server_config:\n  cert_file: " + dir + "/nope.crt\n  key_file: " + dir + "/nope.key\n", "nope"},
		{"not yaml", "tls_server_config: [\n", "yaml"},
		{"unknown field", "basic_auth:\n  x: y\n", "basic_auth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".yml")
			write(t, f, tt.yaml)
			err := export.ValidateWebConfig(f)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), f) {
				t.Errorf("ValidateWebConfig() = %v, want an error naming the file and %q", err, tt.want)
			}
		})
	}
	if err := export.ValidateWebConfig(filepath.Join(dir, "absent.yml")); err == nil {
		t.Error("ValidateWebConfig() of a missing file = nil")
	}
}

// The example web configuration validates once its certificate paths exist, and its password is the one
// it documents.
func TestExampleWebConfig(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir)
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "prometheus", "web-config.yml"))
	if err != nil {
		t.Fatal(err)
	}
	y := strings.NewReplacer("/etc/hemostat/tls/hemostat.crt", certFile, "/etc/hemostat/tls/hemostat.key", keyFile).Replace(string(b))
	f := filepath.Join(dir, "web.yml")
	write(t, f, y)
	if err := export.ValidateWebConfig(f); err != nil {
		t.Fatalf("the example does not validate: %v", err)
	}
	i := strings.Index(y, "prometheus: ")
	if i < 0 {
		t.Fatal("the example has no prometheus user")
	}
	hash := strings.TrimSpace(y[i+len("prometheus: "):])
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("change-me")); err != nil {
		t.Errorf("the example's hash is not of the password it documents: %v", err)
	}
}

// The web configuration's dependencies must not bring golang.org/x/net/trace back (go.mod replaces
// go-conntrack for that): its init makes the linker keep every exported method, +40 MB of binary.
func TestBinaryDoesNotLinkNetTrace(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/hemostat/hemostat").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "golang.org/x/net/trace" {
			t.Fatal("hemostat links golang.org/x/net/trace")
		}
	}
	if !strings.Contains(string(out), "github.com/prometheus/exporter-toolkit/web") {
		t.Fatal("hemostat does not link the exporter-toolkit: the check proves nothing")
	}
}
