package config

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse: any configuration file either loads with its defaults filled in,
// or is refused with an error that names the file.
func FuzzParse(f *testing.F) {
	f.Add([]byte("listen = \"inet:127.0.0.1:10025\"\n[dns]\ntimeout = \"2s\"\n"))
	f.Add([]byte("[policy.recipients]\n\"x.example\" = \"encrypt dry-run\"\n"))
	f.Add([]byte("[smime]\ncipher = \"aes256-gcm\"\n[format]\nprefer = \"openpgp\"\n"))
	f.Add([]byte("[reinject]\naddress = \"127.0.0.1:10026\"\n[exempt]\nsenders = []\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("fuzz.toml", b)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.toml") {
				t.Fatalf("error %q does not name the file", err)
			}
			var ke *keyError
			if errors.As(err, &ke) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("validation error %v is not ErrInvalid", err)
			}
			return
		}
		if c.Network == "" || c.Levels == nil || c.Exemptions == nil || c.Timeouts.Rcpt == nil || c.OpenPGP.Enabled == nil || c.MaxMessageSize <= 0 {
			t.Fatalf("defaults missing: %+v", c)
		}
		// What check-config prints must load again.
		if _, err := Parse("again.toml", []byte(c.String())); err != nil && !strings.Contains(c.String(), "spool_dir") {
			t.Fatalf("effective configuration does not load: %v\n%s", err, c)
		}
	})
}
