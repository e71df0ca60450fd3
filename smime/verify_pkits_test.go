package smime

// Verification against NIST PKITS (Public Key Interoperability Test
// Suite): the 224 S/MIME signed messages Debian's
// python3-cryptography-vectors ships. The chain questions PKITS asks are
// not Verify's (the binding is DANE's); the signature verdict of each must
// agree with `openssl cms -verify -noverify`.

import (
	"os"
	"path/filepath"
	"testing"
)

// pkitsDir is where python3-cryptography-vectors (setup.sh installs it)
// puts the PKITS S/MIME messages.
const pkitsDir = "/usr/lib/python3/dist-packages/cryptography_vectors/x509/PKITS_data/smime"

func TestVerifyPKITS(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(pkitsDir, "*.eml"))
	if len(files) == 0 {
		if os.Getenv("DANEMILTER_INTEGRATION") == "1" {
			t.Fatalf("no PKITS messages in %s and DANEMILTER_INTEGRATION=1 (apt-get install python3-cryptography-vectors)", pkitsDir)
		}
		t.Skipf("no PKITS messages in %s: apt-get install python3-cryptography-vectors (setup.sh does)", pkitsDir)
	}
	openssl := needOpenSSL(t)
	var agree, good, weak int
	for _, f := range files {
		msg, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		v, err := VerifyEntity(msg)
		ours := err == nil && v.Verified()
		if theirs := opensslVerifies(t, openssl, f); theirs != ours {
			t.Errorf("%s: Verify %v (%v), openssl %v", filepath.Base(f), ours, verdictDetail(v, err), theirs)
			continue
		}
		agree++
		if ours {
			good++
			if !v.Valid() {
				weak++
			}
		}
	}
	t.Logf("PKITS: %d S/MIME messages, Verify agrees with openssl cms -verify -noverify on %d (%d verify, %d of them weak: SHA-1)", len(files), agree, good, weak)
}

func verdictDetail(v *Verification, err error) any {
	if err != nil || v == nil {
		return err
	}
	var errs []error
	for _, s := range v.Signers {
		errs = append(errs, s.Err)
	}
	return errs
}
