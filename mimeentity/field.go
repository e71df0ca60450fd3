package mimeentity

import "strings"

// Field is one header field; Value carries no leading space.
type Field struct{ Name, Value string }

// IsEntityField reports whether the header field called name belongs to
// the MIME entity and so moves inside the encryption: every Content-*
// field, compared case-insensitively (RFC 2045 §9, RFC 8551 §3.1).
// MIME-Version and the RFC 5322 fields (From, To, Subject, ...) stay in the
// outer header.
func IsEntityField(name string) bool {
	const prefix = "content-" // RFC 2045 §9: "Content-" fields
	return len(name) > len(prefix) && strings.EqualFold(name[:len(prefix)], prefix)
}

// fieldNameChar reports whether c may stand in a field name: printable
// US-ASCII except colon (RFC 5322 §2.2, ftext of §3.6.8: %d33-57 / %d59-126).
func fieldNameChar(c byte) bool {
	return c > ' ' && c < 0x7f && c != ':'
}

// ValidFieldName reports whether name is a field name (RFC 5322 §2.2,
// §3.6.8): one or more printable US-ASCII characters except colon.
func ValidFieldName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !fieldNameChar(name[i]) {
			return false
		}
	}
	return true
}

// CleanFieldName returns name without the characters RFC 5322 §2.2 does
// not allow in a field name (control characters, space, colon, octets above
// 126), so that a name can never break the line structure of what is
// written; name itself when it is clean. MTAs do not pass such names, but
// the result may be "" for one that has nothing else.
func CleanFieldName(name string) string {
	if ValidFieldName(name) || name == "" {
		return name
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		if c := name[i]; fieldNameChar(c) {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// CRLF returns v with its line breaks, bare LF as MTAs pass folded values,
// turned into CRLF (RFC 5322 §2.2.3: a folded value breaks with CRLF
// followed by white space). A bare CR is left as it is.
func CRLF(v string) string {
	if !strings.Contains(v, "\n") {
		return v
	}
	v = strings.ReplaceAll(v, "\r\n", "\n")
	return strings.ReplaceAll(v, "\n", "\r\n")
}

// WriteField writes one header field to b as it stood: the name cleaned by
// [CleanFieldName], a colon, value exactly as it follows the colon (its
// leading space, if any, included) with line breaks made CRLF by [CRLF],
// and CRLF (RFC 5322 §2.2).
func WriteField(b *strings.Builder, name, value string) {
	b.WriteString(CleanFieldName(name))
	b.WriteByte(':')
	b.WriteString(CRLF(value))
	b.WriteString("\r\n")
}

// UnfoldValue unfolds a header field value (RFC 5322 §2.2.3: a line break
// followed by white space is removed; a bare line break, which a value
// must not hold, becomes a space) and trims surrounding white space.
func UnfoldValue(v string) string {
	if !strings.ContainsAny(v, "\r\n") {
		return strings.TrimSpace(v)
	}
	v = strings.ReplaceAll(v, "\r\n", "\n")
	v = strings.ReplaceAll(v, "\r", "\n")
	var b strings.Builder
	for i, line := range strings.Split(v, "\n") {
		// RFC 5322 §2.2.3: unfolding removes the CRLF before WSP.
		if i > 0 && (line == "" || (line[0] != ' ' && line[0] != '\t')) {
			b.WriteByte(' ')
		}
		b.WriteString(line)
	}
	return strings.TrimSpace(b.String())
}

// FoldField renders "Name: value\r\n", folded before spaces so that lines
// stay within 78 characters where the value allows it (RFC 5322 §2.1.1,
// §2.2.3). Unfolding gives back the value exactly; no line is left holding
// only white space (RFC 5322 §2.2.3). Neither name nor value is checked:
// pass a name that [ValidFieldName] accepts and a value without line breaks
// ([UnfoldValue]).
func FoldField(name, value string) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte(':')
	lineLen := len(name) + 1
	start := 0
	for i := 0; i <= len(value); i++ {
		if i < len(value) && (value[i] != ' ' || i == start) {
			continue
		}
		seg := value[start:i] // after the first, it starts with its space
		if start == 0 {
			seg = " " + seg
		} else if lineLen+len(seg) > 78 && lineLen > 0 && strings.TrimSpace(seg) != "" { // RFC 5322 §2.1.1: 78; §3.2.2: no line of white space only
			b.WriteString("\r\n") // RFC 5322 §2.2.3: fold before white space
			lineLen = 0
		}
		b.WriteString(seg)
		lineLen += len(seg)
		start = i
	}
	b.WriteString("\r\n")
	return b.String()
}
