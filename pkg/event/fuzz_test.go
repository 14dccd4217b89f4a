package event_test

import (
	stdjson "encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	fastjson "github.com/segmentio/encoding/json"

	"github.com/hemostat/hemostat/pkg/event"
)

// FuzzDecode checks the decoder never panics and that every error is a *DecodeError.
func FuzzDecode(f *testing.F) {
	env, _ := event.New("monitor", "h", "h/web/crashed", "", sampleAlert())
	raw, _ := env.Marshal()
	f.Add(raw)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"1","event_type":"remediation_needed","timestamp":"2026-11-28T10:30:45Z","data":{"container":"web","action":"restart","confidence":0.9}}`))
	f.Add([]byte(`{"id":"1","event_type":"remediation_complete","timestamp":"2026-11-28T10:30:45Z","data":{"container":"w","action":"restart","result":{"status":"success"}}}`))
	f.Add([]byte(`{"id":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := event.Decode(b)
		if err != nil {
			var de *event.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
			}
			return
		}
		if e.ID == "" || e.EventType == "" || e.Timestamp.IsZero() {
			t.Fatalf("accepted an envelope without required fields: %+v", e)
		}
		if _, err := e.Marshal(); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

// FuzzDecoderMatchesStdlib holds the fast decoder the envelope uses (segmentio/encoding/json) to the
// standard library's: the same inputs accepted, into the same envelope and the same alert payload.
func FuzzDecoderMatchesStdlib(f *testing.F) {
	env, _ := event.New("monitor", "h", "h/web/crashed", "", sampleAlert())
	raw, _ := env.Marshal()
	f.Add(raw)
	f.Add([]byte(env.Data))
	f.Add([]byte(`{"id":"1","schema":"1","event_type":7,"data":{"container_name":["x"]}}`))
	f.Add([]byte(`{"id":"1","id":"2","timestamp":"2026-11-28T10:30:45.1+01:00","data":null}`))
	f.Add([]byte("{\"id\":\"\xff\",\"labels\":{\"a\":\"\\ud800\"}}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var std, fast event.Envelope
		errStd := stdjson.Unmarshal(b, &std)
		errFast := fastjson.Unmarshal(b, &fast)
		if errStd == nil && errFast != nil && strictTime(errFast) {
			return
		}
		if (errStd == nil) != (errFast == nil) {
			t.Fatalf("envelope %q: stdlib error %v, fast error %v", b, errStd, errFast)
		}
		if errStd == nil && !reflect.DeepEqual(std, fast) {
			t.Fatalf("envelope %q: stdlib %+v, fast %+v", b, std, fast)
		}
		var pStd, pFast event.ContainerUnhealthy
		errStd = stdjson.Unmarshal(b, &pStd)
		errFast = fastjson.Unmarshal(b, &pFast)
		if errStd == nil && errFast != nil && strictTime(errFast) {
			return
		}
		if (errStd == nil) != (errFast == nil) {
			t.Fatalf("alert %q: stdlib error %v, fast error %v", b, errStd, errFast)
		}
		if errStd == nil && !reflect.DeepEqual(pStd, pFast) {
			t.Fatalf("alert %q: stdlib %+v, fast %+v", b, pStd, pFast)
		}
	})
}

// strictTime reports a timestamp the fast decoder refused and the stdlib took: the stdlib's time parser
// is lenient with some strings that are not RFC 3339 (one-digit hours, a comma before the fraction).
func strictTime(err error) bool {
	return strings.Contains(err.Error(), "time.Time")
}
