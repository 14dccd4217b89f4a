// Package safetext makes text that anyone may have written safe to show on a terminal. Container names,
// labels, log lines, reasons and exec output reach Redis from containers and from whoever can write to
// Redis; printed as they are, an escape sequence in them could move the cursor, rewrite what the dash or
// `hemostat audit` shows, retitle the terminal or, on some terminals, answer back. Line shows every control
// character, escape and bidirectional override as a visible escape (\x1b, \u202e) and every invalid byte
// as \xNN, so what was sent stays readable and nothing is interpreted.
//
// The dash cleans everything a source gives it (Deep); the text outputs of the CLI clean each cell
// (Line). JSON output needs nothing: encoding/json escapes control characters itself.
package safetext

import (
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"
)

// Line returns s safe for one line of a terminal: tabs, newlines and carriage returns become spaces;
// other control characters (C0, DEL, C1), bidirectional controls and invalid UTF-8 become visible escapes.
// Text without any of them is returned as it is, without allocating.
func Line(s string) string {
	if clean(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\t' || r == '\n' || r == '\r':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case (r >= 0x80 && r <= 0x9f) || bidi(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// clean reports whether s is printable ASCII, or UTF-8 without anything Line changes.
func clean(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return cleanUTF8(s[i:])
		}
	}
	return true
}

func cleanUTF8(s string) bool {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || r < 0x20 || (r >= 0x7f && r <= 0x9f) || bidi(r) {
			return false
		}
		i += n
	}
	return true
}

// bidi reports the bidirectional formatting characters, which reorder what follows them on screen
// (CVE-2021-42574, "Trojan Source").
func bidi(r rune) bool {
	switch {
	case r == 0x061c, r == 0x200e, r == 0x200f:
		return true
	case r >= 0x202a && r <= 0x202e:
		return true
	case r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// Deep cleans, with Line, every string reachable from v, a pointer: exported struct fields, slices,
// arrays, map keys and values, through pointers and interfaces. It changes only what needs it, so a clean
// value costs a walk and no allocation. Unexported fields are left alone (time.Time has nothing to clean).
func Deep(v any) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return
	}
	walk(rv.Elem())
}

func walk(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if s := v.String(); !clean(s) && v.CanSet() {
			v.SetString(Line(s))
		}
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return
		}
		e := v.Elem()
		if v.Kind() == reflect.Interface {
			// The value inside an interface cannot be set; clean a copy and put it back.
			if !needs(e) || !v.CanSet() {
				return
			}
			c := reflect.New(e.Type()).Elem()
			c.Set(e)
			walk(c)
			v.Set(c)
			return
		}
		walk(e)
	case reflect.Struct:
		t := v.Type()
		for i := range v.NumField() {
			if t.Field(i).IsExported() {
				walk(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return // []byte is data (raw JSON), not text
		}
		for i := range v.Len() {
			walk(v.Index(i))
		}
	case reflect.Map:
		if v.IsNil() || !needs(v) {
			return
		}
		// Keys cannot be changed in place: rebuild the entries that need it.
		it := v.MapRange()
		type kv struct{ k, v reflect.Value }
		var fix []kv
		for it.Next() {
			k, val := it.Key(), it.Value()
			if needs(k) || needs(val) {
				ck := reflect.New(k.Type()).Elem()
				ck.Set(k)
				walk(ck)
				cv := reflect.New(val.Type()).Elem()
				cv.Set(val)
				walk(cv)
				fix = append(fix, kv{k, reflect.Value{}}, kv{ck, cv})
			}
		}
		for i := 0; i < len(fix); i += 2 {
			v.SetMapIndex(fix[i].k, reflect.Value{})
			v.SetMapIndex(fix[i+1].k, fix[i+1].v)
		}
	}
}

// needs reports whether any string reachable from v needs cleaning.
func needs(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		return !clean(v.String())
	case reflect.Pointer, reflect.Interface:
		return !v.IsNil() && needs(v.Elem())
	case reflect.Struct:
		t := v.Type()
		for i := range v.NumField() {
			if t.Field(i).IsExported() && needs(v.Field(i)) {
				return true
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return false
		}
		for i := range v.Len() {
			if needs(v.Index(i)) {
				return true
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			if needs(it.Key()) || needs(it.Value()) {
				return true
			}
		}
	}
	return false
}
