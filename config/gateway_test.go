package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestGateway(t *testing.T) {
	d, err := Parse("empty", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Gateway.KeyDir != "" || d.Gateway.OnFailure != "pass" || d.DecryptReject || len(d.Gateway.Decrypt) != 0 {
		t.Errorf("defaults %+v", d.Gateway)
	}
	c, err := Load(sampleConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.KeyDir != d.Gateway.KeyDir || c.Gateway.OnFailure != d.Gateway.OnFailure || !slices.Equal(c.Gateway.Decrypt, d.Gateway.Decrypt) {
		t.Errorf("sample [gateway] %+v, defaults %+v", c.Gateway, d.Gateway)
	}

	const local = "local_domains = [\"example.org\", \".corp.example\"]\n"
	for _, tc := range []struct {
		in     string
		reject bool
		rcpt   string
		want   bool
	}{
		{local + "[gateway]\nkey_dir = \"/etc/danemilter/keys\"\ndecrypt = [\"example.org\"]\n", false, "a@example.org", true},
		{local + "[gateway]\nkey_dir = \"/k\"\ndecrypt = [\"boss@example.org\"]\non_failure = \"reject\"\n", true, "user@example.org", false},
		{local + "[gateway]\nkey_dir = \"/k\"\ndecrypt = [\"Boss@example.org\"]\n", false, "boss@EXAMPLE.org", true},
		{local + "[gateway]\nkey_dir = \"/k\"\ndecrypt = [\".corp.example\"]\n", false, "u@eu.corp.example", true},
		{local + "[gateway]\nkey_dir = \"/k\"\n", false, "a@example.org", false},
	} {
		c, err := Parse("t", []byte(tc.in))
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if c.DecryptReject != tc.reject || c.DecryptList.Contains(tc.rcpt) != tc.want {
			t.Errorf("%q: reject %v, Contains(%s) %v", tc.in, c.DecryptReject, tc.rcpt, c.DecryptList.Contains(tc.rcpt))
		}
	}
	for _, tc := range []struct{ in, key string }{
		{local + "[gateway]\non_failure = \"drop\"\n", "gateway.on_failure"},
		{local + "[gateway]\nkey_dir = \"/k\"\ndecrypt = [\"other.example\"]\n", "gateway.decrypt"},
		{local + "[gateway]\nkey_dir = \"/k\"\ndecrypt = [\"a@other.example\"]\n", "gateway.decrypt"},
		{local + "[gateway]\nkey_dir = \"/k\"\ndecrypt = [\"not a domain\"]\n", "gateway.decrypt"},
		{local + "[gateway]\nkey_dir = \"/k\"\ndecrypt = [\"@example.org\"]\n", "gateway.decrypt"},
		{local + "[gateway]\ndecrypt = [\"example.org\"]\n", "gateway.decrypt"},
		{local + "[gateway]\nkeydir = \"/k\"\n", "keydir"},
	} {
		_, err := Parse("t", []byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: %v, want an error naming %s", tc.in, err, tc.key)
		}
		if err != nil && tc.key != "keydir" && !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v does not wrap ErrInvalid", tc.in, err)
		}
	}
}
