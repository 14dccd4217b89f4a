package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// sinks checks the alert agent's notification settings and that each sink's host is reachable, without
// sending anything. URLs are shown as scheme://host only: a webhook URL is a secret.
func (r *run) sinks(ctx context.Context) {
	const name = "notifications"
	s := r.o.Sinks
	type target struct{ sink, url string }
	var targets []target
	res := Result{Name: name, Status: StatusOK}
	if s.SlackWebhookURL != "" {
		targets = append(targets, target{"Slack webhook", s.SlackWebhookURL})
	}
	if s.SlackToken != "" {
		if s.SlackChannel == "" {
			res.Status = StatusFail
			res.Details = append(res.Details, "Slack bot token set without a channel: the alert agent cannot post")
			res.Fix = "Set --slack-channel (HEMOSTAT_SLACK_CHANNEL) to the channel's ID or name."
		}
		if !strings.HasPrefix(s.SlackToken, "xoxb-") {
			res.Status = worst(res.Status, StatusWarn)
			res.Details = append(res.Details, "the Slack token does not start with xoxb-: threads need a bot token")
		}
		api := s.SlackAPIURL
		if api == "" {
			api = "https://slack.com/api"
		}
		targets = append(targets, target{"Slack API", api})
	}
	if s.WebhookURL != "" {
		targets = append(targets, target{"webhook", s.WebhookURL})
	}
	if len(targets) == 0 {
		r.add(Result{Name: name, Status: StatusWarn,
			Summary: "no notification sink: the alert agent stores events for dash and audit, but nobody is told when hemostat acts, gives up or escalates",
			Fix:     "Set HEMOSTAT_SLACK_WEBHOOK_URL (or HEMOSTAT_SLACK_TOKEN and HEMOSTAT_SLACK_CHANNEL), and/or HEMOSTAT_WEBHOOK_URL."})
		return
	}
	var ok []string
	for _, t := range targets {
		where := redactURL(t.url)
		if r.o.Prober == nil {
			res.Details = append(res.Details, fmt.Sprintf("%s %s: not probed", t.sink, where))
			continue
		}
		cctx, cancel := r.timeout(ctx)
		found, err := r.o.Prober.Probe(cctx, t.url)
		cancel()
		if err != nil {
			res.Status = StatusFail
			res.Details = append(res.Details, fmt.Sprintf("%s %s: %v", t.sink, where, err))
			if res.Fix == "" {
				res.Fix = "Check the URL, DNS and the outbound firewall or proxy of this host (HTTPS_PROXY is honoured)."
			}
			continue
		}
		ok = append(ok, fmt.Sprintf("%s %s (%s)", t.sink, where, found))
	}
	switch {
	case len(ok) > 0:
		res.Summary = "reachable without sending: " + strings.Join(ok, "; ")
	default:
		res.Summary = "no sink reachable"
	}
	r.add(res)
}

// redactURL keeps a URL's scheme and host: paths and queries of webhooks carry their secret.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host
}

// NetProber probes with DNS, a TCP connection and, for https, a TLS handshake that verifies the
// certificate. It sends no HTTP request.
type NetProber struct {
	Resolver *net.Resolver // default net.DefaultResolver
	RootCAs  *x509.CertPool
	Timeout  time.Duration                         // per step, default 5s
	Proxy    func(*http.Request) (*url.URL, error) // default http.ProxyFromEnvironment
}

// Probe implements Prober.
func (p NetProber) Probe(ctx context.Context, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("not a URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return "", fmt.Errorf("scheme %q: want https or http", u.Scheme)
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("no host")
	}
	// Through a proxy (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), as the alert agent's HTTP client goes: only
	// the proxy can be reached from here, so that is what is probed.
	proxy := p.Proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	if pu, err := proxy(&http.Request{URL: u}); err == nil && pu != nil {
		found, err := p.direct(ctx, pu)
		if err != nil {
			return "", fmt.Errorf("proxy %s: %w", redactURL(pu.String()), err)
		}
		return "through proxy " + redactURL(pu.String()) + ": " + found, nil
	}
	return p.direct(ctx, u)
}

// direct probes u's host itself: DNS, TCP, and TLS for https.
func (p NetProber) direct(ctx context.Context, u *url.URL) (string, error) {
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	res := p.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	addrs, err := res.LookupHost(ctx, host)
	if err != nil {
		return "", fmt.Errorf("DNS: %w", err)
	}
	d := net.Dialer{Timeout: timeout, Resolver: res}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	found := fmt.Sprintf("%d address(es), TCP %s", len(addrs), port)
	if u.Scheme == "http" {
		return found + ", plain HTTP", nil
	}
	tc := tls.Client(conn, &tls.Config{ServerName: host, RootCAs: p.RootCAs, MinVersion: tls.VersionTLS12})
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return "", fmt.Errorf("TLS: %w", err)
	}
	return found + ", " + tls.VersionName(tc.ConnectionState().Version), nil
}
