package mimeentity

import (
	"errors"
	"strings"
	"testing"
)

func TestSplitMultipart(t *testing.T) {
	tests := []struct {
		name, body string
		parts      []string
		closed     bool
		err        bool
	}{
		{"two parts", "pre\r\n--b\r\none\r\n--b\r\ntwo\r\n--b--\r\nepi", []string{"one", "two"}, true, false},
		{"line break belongs to the delimiter", "--b\r\none\r\n\r\n--b--", []string{"one\r\n"}, true, false},
		{"bare LF", "--b\none\n--b--\n", []string{"one"}, true, false},
		{"transport padding", "--b  \r\none\r\n--b-- \t\r\n", []string{"one"}, true, false},
		{"longer boundary is not a delimiter", "--b\r\none\r\n--bx\r\n--b--", []string{"one\r\n--bx"}, true, false},
		{"no close delimiter", "--b\r\none\r\n--b\r\ntwo", []string{"one", "two"}, false, false},
		{"empty part", "--b\r\n--b--", []string{""}, true, false},
		{"no delimiter", "one\r\ntwo", nil, false, true},
		{"empty boundary", "--\r\n", nil, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			boundary := "b"
			if tc.name == "empty boundary" {
				boundary = ""
			}
			parts, closed, err := SplitMultipart([]byte(tc.body), boundary)
			if tc.err {
				if !errors.Is(err, ErrMultipart) {
					t.Fatalf("err %v, want ErrMultipart", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range parts {
				got = append(got, string(p))
			}
			if strings.Join(got, "|") != strings.Join(tc.parts, "|") || len(got) != len(tc.parts) || closed != tc.closed {
				t.Errorf("got %q closed=%v, want %q closed=%v", got, closed, tc.parts, tc.closed)
			}
		})
	}
}

func TestCanonicalCRLF(t *testing.T) {
	for in, want := range map[string]string{"": "", "a\nb": "a\r\nb", "a\r\nb\n": "a\r\nb\r\n", "\n\n": "\r\n\r\n", "a\rb": "a\rb"} {
		if got := string(CanonicalCRLF([]byte(in))); got != want {
			t.Errorf("CanonicalCRLF(%q) = %q, want %q", in, got, want)
		}
	}
}
