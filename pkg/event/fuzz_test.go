package event_test

import (
	"errors"
	"testing"

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
