package mimeentity

import (
	"strings"
	"testing"
)

func TestValidFieldName(t *testing.T) {
	for _, tt := range []struct {
		name  string
		valid bool
		clean string
	}{
		{"Subject", true, "Subject"},
		{"X-Weird!#$%&'*+-.^_`|~", true, "X-Weird!#$%&'*+-.^_`|~"},
		{"", false, ""},
		{"Sub ject", false, "Subject"},
		{"Subject:", false, "Subject"},
		{"Sub\r\nject", false, "Subject"},
		{"Sub\tject", false, "Subject"},
		{"Sub\x7fject", false, "Subject"},
		{"Süject", false, "Sject"},
		{"\x00", false, ""},
		{":", false, ""},
	} {
		if got := ValidFieldName(tt.name); got != tt.valid {
			t.Errorf("ValidFieldName(%q) = %v, want %v", tt.name, got, tt.valid)
		}
		if got := CleanFieldName(tt.name); got != tt.clean {
			t.Errorf("CleanFieldName(%q) = %q, want %q", tt.name, got, tt.clean)
		}
		if c := CleanFieldName(tt.name); c != "" && !ValidFieldName(c) {
			t.Errorf("CleanFieldName(%q) = %q is not valid", tt.name, c)
		}
	}
}

func TestCRLF(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"a\n b", "a\r\n b"},
		{"a\r\n b", "a\r\n b"},
		{"a\r\n b\n\tc", "a\r\n b\r\n\tc"},
		{"a\rb", "a\rb"},
	} {
		if got := CRLF(tt.in); got != tt.want {
			t.Errorf("CRLF(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestWriteField(t *testing.T) {
	for _, tt := range []struct{ name, value, want string }{
		{"Subject", " hello", "Subject: hello\r\n"},
		{"Subject", "hello", "Subject:hello\r\n"},
		{"Subject", "", "Subject:\r\n"},
		{"Content-Type", " text/plain;\n charset=utf-8", "Content-Type: text/plain;\r\n charset=utf-8\r\n"},
		{"Bad Name:", " x", "BadName: x\r\n"},
		{"X\r\nInjected", " x", "XInjected: x\r\n"},
	} {
		var b strings.Builder
		WriteField(&b, tt.name, tt.value)
		if b.String() != tt.want {
			t.Errorf("WriteField(%q, %q) = %q, want %q", tt.name, tt.value, b.String(), tt.want)
		}
	}
}

func TestFoldField(t *testing.T) {
	for _, v := range []string{
		"",
		"short",
		strings.Repeat("word ", 40),
		"two  spaces " + strings.Repeat("x", 100) + " end",
		strings.Repeat("y", 200),
		"=?utf-8?q?Gr=C3=BC=C3=9Fe?= " + strings.Repeat("=?utf-8?q?abcdefghij?= ", 8),
	} {
		checkFold(t, "Subject", v, true)
	}
}

// checkFold checks FoldField(name, v): CRLF-terminated, continuation lines
// that start with a space and hold more than white space, unfolding gives
// back "name: v", and with length, lines within 78 characters where a
// single space allowed a fold (runs of spaces may leave a line longer: no
// line may hold only white space).
func checkFold(t *testing.T, name, v string, length bool) {
	t.Helper()
	got := FoldField(name, v)
	if !strings.HasSuffix(got, "\r\n") {
		t.Errorf("fold(%q) = %q: no CRLF", v, got)
	}
	lines := strings.Split(strings.TrimSuffix(got, "\r\n"), "\r\n")
	for i, l := range lines {
		rest := strings.TrimPrefix(l, name+":")[1:] // after the name or the fold's space
		if length && len(l) > 78 && strings.Contains(rest, " ") && strings.Trim(rest, " ") != "" {
			t.Errorf("fold(%q) line %d too long: %q", v, i, l)
		}
		if i > 0 && (l == "" || l[0] != ' ' || strings.TrimSpace(l) == "") {
			t.Errorf("fold(%q) bad continuation line %q", v, l)
		}
	}
	if unfolded := strings.ReplaceAll(got, "\r\n", ""); unfolded != name+": "+v {
		t.Errorf("fold(%q) unfolds to %q", v, unfolded)
	}
}

func TestUnfoldValue(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{" plain ", "plain"},
		{"a\r\n b", "a b"},
		{"a\r\n\tb", "a\tb"},
		{"a\nb", "a b"},
		{"a\r\nInjected: x", "a Injected: x"},
		{"a\rb", "a b"},
		{"", ""},
		{"\r\n", ""},
	} {
		if got := UnfoldValue(tt.in); got != tt.want {
			t.Errorf("UnfoldValue(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
