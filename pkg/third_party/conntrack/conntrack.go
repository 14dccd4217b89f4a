// Package conntrack stands in for github.com/mwitkow/go-conntrack, through the replace directive in
// hemostat's go.mod. The exporter-toolkit's web package (the --web.config.file of hemostat export) imports
// github.com/prometheus/common/config, whose HTTP client configuration wraps its dialer with go-conntrack.
// go-conntrack imports golang.org/x/net/trace, whose init registers handlers that execute html/template;
// that makes reflect's method lookup reachable, so the linker keeps every exported method of every package:
// the binary grew from 48 MB to 88 MB. hemostat never builds the toolkit's HTTP clients, so the stand-in
// keeps the API and dials without tracing or connection metrics.
package conntrack

import (
	"context"
	"net"
)

type dialerOpts struct {
	dial func(context.Context, string, string) (net.Conn, error)
}

type dialerOpt func(*dialerOpts)

// DialWithName is accepted and ignored: no metrics are kept.
func DialWithName(string) dialerOpt { return func(*dialerOpts) {} }

// DialWithTracing is accepted and ignored: nothing is traced.
func DialWithTracing() dialerOpt { return func(*dialerOpts) {} }

// DialWithoutMonitoring is accepted: nothing is monitored anyway.
func DialWithoutMonitoring() dialerOpt { return func(*dialerOpts) {} }

// DialWithDialContextFunc dials with f.
func DialWithDialContextFunc(f func(context.Context, string, string) (net.Conn, error)) dialerOpt {
	return func(o *dialerOpts) { o.dial = f }
}

// DialWithDialer dials with d.
func DialWithDialer(d *net.Dialer) dialerOpt { return DialWithDialContextFunc(d.DialContext) }

// NewDialContextFunc returns the dial function the options name, a plain net.Dialer's by default.
func NewDialContextFunc(opts ...dialerOpt) func(context.Context, string, string) (net.Conn, error) {
	o := &dialerOpts{dial: (&net.Dialer{}).DialContext}
	for _, f := range opts {
		f(o)
	}
	return o.dial
}
