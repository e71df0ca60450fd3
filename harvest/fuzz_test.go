package harvest

import (
	"testing"
)

func FuzzParseCapabilities(f *testing.F) {
	f.Add(capsDER(f, oidAES256GCM, oidAES256CBC, oidRSAOAEP))
	f.Add([]byte{0x31, 0x02, 0x30, 0x00})
	f.Add([]byte{0x30, 0x80})
	f.Fuzz(func(t *testing.T, der []byte) {
		oids, err := ParseCapabilities(der)
		if err != nil && oids != nil {
			t.Errorf("error %v with OIDs %v", err, oids)
		}
	})
}
