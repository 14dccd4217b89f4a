package event

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"crypto/sha256"
	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"
)

// Schema is the envelope schema version this build writes.
const Schema = 1

// Envelope wraps every event on the bus. Its JSON is the value of the stream entry's one field, "event".
type Envelope struct {
	ID          string          `json:"id"`
	Schema      int             `json:"schema"`
	EventType   string          `json:"event_type"`
	Timestamp   time.Time       `json:"timestamp"`
	Agent       string          `json:"agent"`
	Host        string          `json:"host"`
	Incident    string          `json:"incident"`
	CausationID string          `json:"causation_id"`
	Data        json.RawMessage `json:"data"`

	payload Payload // decoded and validated by Decode, so consumers do not decode the data twice
}

// Field is the name of the one field of a stream entry.
const Field = "event"

// NewID returns a unique, time-sortable id (UUIDv7).
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// New builds an envelope around a payload. The payload's type fixes the event type.
func New(agent, host, incident, causationID string, payload Payload) (Envelope, error) {
	data, err := stdjson.Marshal(payload) // encoding/json: the payloads' omitzero fields
	if err != nil {
		return Envelope{}, fmt.Errorf("encode %s: %w", payload.EventType(), err)
	}
	return Envelope{
		ID:          NewID(),
		Schema:      Schema,
		EventType:   payload.EventType(),
		Timestamp:   time.Now().UTC(),
		Agent:       agent,
		Host:        host,
		Incident:    incident,
		CausationID: causationID,
		Data:        data,
	}, nil
}

// Marshal returns the envelope's JSON: the document json.Marshal would write (byte for byte when Data is
// compact), without reflection and without re-validating Data, which New produced or Decode checked:
// every event on the bus passes here.
func (e Envelope) Marshal() ([]byte, error) {
	if d := bytes.TrimSpace(e.Data); len(d) > 0 && (d[0] != '{' || d[len(d)-1] != '}') {
		return stdjson.Marshal(envelopeJSON(e)) // not an object: let encoding/json judge it
	}
	b := make([]byte, 0, 224+len(e.Data))
	b = append(b, `{"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"schema":`...)
	b = strconv.AppendInt(b, int64(e.Schema), 10)
	b = append(b, `,"event_type":`...)
	b = appendString(b, e.EventType)
	b = append(b, `,"timestamp":`...)
	ts, err := e.Timestamp.MarshalJSON()
	if err != nil {
		return nil, err
	}
	b = append(b, ts...)
	b = append(b, `,"agent":`...)
	b = appendString(b, e.Agent)
	b = append(b, `,"host":`...)
	b = appendString(b, e.Host)
	b = append(b, `,"incident":`...)
	b = appendString(b, e.Incident)
	b = append(b, `,"causation_id":`...)
	b = appendString(b, e.CausationID)
	b = append(b, `,"data":`...)
	if len(e.Data) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, bytes.TrimSpace(e.Data)...)
	}
	return append(b, '}'), nil
}

// envelopeJSON has the envelope's fields and no methods: the reflective encoding of the same document.
type envelopeJSON Envelope

// appendString appends s as a JSON string, escaped exactly as encoding/json does.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := stdjson.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// DecodeError says why bytes are not a valid envelope or payload.
type DecodeError struct {
	Field  string // the offending field, "" for the whole document
	Reason string
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return "decode event: " + e.Reason
	}
	return fmt.Sprintf("decode event: field %q: %s", e.Field, e.Reason)
}

// ErrMalformed matches every *DecodeError with errors.Is.
var ErrMalformed = errors.New("malformed event")

// Is lets errors.Is(err, ErrMalformed) match.
func (e *DecodeError) Is(target error) bool { return target == ErrMalformed }

func typeError(err error) error {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return &DecodeError{Field: ute.Field, Reason: fmt.Sprintf("want %s, got %s", ute.Type, ute.Value)}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &DecodeError{Reason: fmt.Sprintf("invalid JSON at offset %d: %v", se.Offset, se)}
	}
	return &DecodeError{Reason: err.Error()}
}

// Decode parses an envelope strictly: wrong types and missing required fields are errors, unknown fields
// are ignored. The payload is checked too when the event type is known.
func Decode(b []byte) (Envelope, error) {
	var e Envelope
	if len(b) > MaxEnvelopeBytes {
		return e, &DecodeError{Reason: fmt.Sprintf("%d bytes is larger than the %d an envelope may be", len(b), MaxEnvelopeBytes)}
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return e, &DecodeError{Reason: "not a JSON object"}
	}
	if tooDeep(b, MaxDepth) {
		return e, &DecodeError{Reason: fmt.Sprintf("nested deeper than %d levels", MaxDepth)}
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return Envelope{}, typeError(err)
	}
	switch {
	case e.ID == "":
		return e, &DecodeError{Field: "id", Reason: "missing"}
	case e.EventType == "":
		return e, &DecodeError{Field: "event_type", Reason: "missing"}
	case e.Timestamp.IsZero():
		return e, &DecodeError{Field: "timestamp", Reason: "missing"}
	case e.Schema > Schema:
		return e, &DecodeError{Field: "schema", Reason: fmt.Sprintf("version %d is newer than %d", e.Schema, Schema)}
	case len(e.Data) == 0 || string(e.Data) == "null":
		return e, &DecodeError{Field: "data", Reason: "missing"}
	}
	p, err := e.Payload()
	if err != nil && !errors.Is(err, errUnknownType) {
		return e, err
	}
	e.payload = p
	return e, nil
}

var errUnknownType = errors.New("unknown event type")

// MaxEnvelopeBytes bounds an envelope. hemostat's own are a few KiB at most (exec output is cut at 4 KiB,
// evidence and errors are capped); a larger entry was not written by hemostat and is dead-lettered before
// anything is allocated for its fields.
const MaxEnvelopeBytes = 256 << 10

// MaxDepth bounds the nesting of an envelope's JSON. hemostat's nest four levels; the decoder's time grows
// faster than the input with depth (40,000 levels took half a second), so deeper input is refused unread.
const MaxDepth = 32

// tooDeep reports whether the JSON in b nests objects and arrays deeper than max, in one pass that skips
// strings.
func tooDeep(b []byte, max int) bool {
	if bytes.Count(b, []byte{'{'})+bytes.Count(b, []byte{'['}) <= max {
		return false // the common case, counted at memory speed
	}
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			if depth++; depth > max {
				return true
			}
		case '}', ']':
			depth--
		}
	}
	return false
}

// Payload decodes and validates the typed payload of a known event type.
func (e Envelope) Payload() (Payload, error) {
	if e.payload != nil {
		return e.payload, nil
	}
	var p Payload
	switch e.EventType {
	case TypeContainerUnhealthy:
		p = &ContainerUnhealthy{}
	case TypeRemediationNeeded:
		p = &RemediationNeeded{}
	case TypeFalseAlarm:
		p = &FalseAlarm{}
	case TypeRemediationComplete:
		p = &RemediationComplete{}
	case TypeContainerRecovered:
		p = &ContainerRecovered{}
	default:
		return nil, fmt.Errorf("%w %q", errUnknownType, e.EventType)
	}
	if err := json.Unmarshal(e.Data, p); err != nil {
		de := typeError(err).(*DecodeError)
		if de.Field != "" {
			de.Field = "data." + de.Field
		}
		return nil, de
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// DecodeData decodes the envelope's payload into the wanted type, checking the event type.
func DecodeData[T any, PT interface {
	*T
	Payload
}](e Envelope) (*T, error) {
	p, err := e.Payload()
	if err != nil {
		return nil, err
	}
	t, ok := p.(PT)
	if !ok {
		return nil, &DecodeError{Field: "event_type", Reason: fmt.Sprintf("got %s, want %s", e.EventType, PT(new(T)).EventType())}
	}
	return (*T)(t), nil
}

// DeriveID returns the id of an event that must be the same every time it is made again: a UUIDv7 with
// the time at and bits from a hash of seed. A follow-up taken twice gets one id, so it is handled once.
func DeriveID(seed string, at time.Time) string {
	sum := sha256.Sum256([]byte("hemostat/" + seed))
	var u uuid.UUID
	copy(u[:], sum[:16])
	ms := uint64(at.UnixMilli())
	for i := 5; i >= 0; i-- {
		u[i] = byte(ms)
		ms >>= 8
	}
	u[6] = (u[6] & 0x0f) | 0x70 // version 7
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 9562 variant
	return u.String()
}

// WithPayload returns the envelope carrying payload instead, with the same id, time and routing: a
// publisher that learns more before it publishes (the monitor adds the attempts to a recovery) keeps the
// event's identity.
func (e Envelope) WithPayload(payload Payload) (Envelope, error) {
	if payload.EventType() != e.EventType {
		return e, fmt.Errorf("payload %s for a %s envelope", payload.EventType(), e.EventType)
	}
	data, err := stdjson.Marshal(payload)
	if err != nil {
		return e, fmt.Errorf("encode %s: %w", payload.EventType(), err)
	}
	e.Data, e.payload = data, nil
	return e, nil
}
