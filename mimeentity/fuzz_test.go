package mimeentity

import (
	"mime"
	"strings"
	"testing"
)

// FuzzIsEncrypted: IsEncrypted never panics, agrees with mime.ParseMediaType
// wherever that parses the value, and ignores leading whitespace.
func FuzzIsEncrypted(f *testing.F) {
	for _, s := range []string{
		`multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b"`,
		`application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"`,
		`application/x-pkcs7-mime; smime-type=authEnveloped-data`,
		`application/pkcs7-mime; smime-type=signed-data; name=smime.p7m`,
		`application/pkcs7-mime; name="smime.p7m"`,
		`application/pkcs7-mime; name*0="smime"; name*1=".p7m"`,
		`application/pkcs7-mime; name*=utf-8''smime.p7m`,
		"application/pkcs7-mime;\r\n\tsmime-type=enveloped-data",
		`multipart/encrypted (comment); boundary="`,
		`application/pkcs7-mime; smime-type=enveloped-data; smime-type=signed-data`,
		`text/plain; charset=us-ascii`,
		``,
		`;`,
		`"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := IsEncrypted(s)
		if IsEncrypted(" \t"+s) != got {
			t.Errorf("IsEncrypted(%q) changes with leading whitespace", s)
		}
		mt, params, err := mime.ParseMediaType(s)
		if err != nil {
			return
		}
		switch mt {
		case "multipart/encrypted":
			if !got {
				t.Errorf("IsEncrypted(%q) = false for multipart/encrypted", s)
			}
		case "application/pkcs7-mime", "application/x-pkcs7-mime":
			st, ok := params["smime-type"]
			if !ok {
				if want := strings.HasSuffix(strings.ToLower(strings.TrimSpace(params["name"])), ".p7m"); got != want {
					t.Errorf("IsEncrypted(%q) = %v without smime-type, name %q", s, got, params["name"])
				}
				return
			}
			st = strings.ToLower(strings.TrimSpace(st))
			if want := st == "enveloped-data" || st == "authenveloped-data"; got != want {
				t.Errorf("IsEncrypted(%q) = %v for smime-type %q", s, got, st)
			}
		default:
			if got {
				t.Errorf("IsEncrypted(%q) = true for %s", s, mt)
			}
		}
	})
}

// FuzzFoldField: a value unfolded by UnfoldValue folds into lines that
// unfold back to it; a cleaned name is valid or empty.
func FuzzFoldField(f *testing.F) {
	for _, s := range []string{"", "short", strings.Repeat("word ", 40), "a\r\n b", "a  b\tc", strings.Repeat("y", 200)} {
		f.Add("Subject", s)
	}
	f.Fuzz(func(t *testing.T, name, v string) {
		if c := CleanFieldName(name); c != "" && !ValidFieldName(c) {
			t.Errorf("CleanFieldName(%q) = %q is not valid", name, c)
		}
		v = UnfoldValue(v)
		if strings.ContainsAny(v, "\r\n") {
			t.Fatalf("UnfoldValue left a line break in %q", v)
		}
		checkFold(t, "Subject", v, false)
	})
}
