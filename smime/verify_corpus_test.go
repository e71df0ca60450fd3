package smime

// Verification against third-party mail: the corpus in ../../shared/corpus
// (Thunderbird's S/MIME test messages and fastmail's authentication_milter
// S/MIME cases), whose EXPECTED.tsv states per message what `openssl cms
// -verify -noverify` says about each layer. Verify must agree on every
// signed layer it can reach without decrypting.

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// corpusDir is the shared corpus beside the clone (CI checks shared/ out
// next to the repository).
const corpusDir = "../../shared/corpus"

// corpusLayer is one layer of EXPECTED.tsv's tool_result column, e.g.
// "1.c opaque Alice@example.com sha256: good, chain good".
type corpusLayer struct {
	id, kind, signer, digest string
	good                     bool
}

var layerRE = regexp.MustCompile(`^(\S+) (detached|opaque) (.+) (\w+): (good|bad)`)

func parseLayers(s string) []corpusLayer {
	var out []corpusLayer
	for _, l := range strings.Split(s, "; ") {
		if m := layerRE.FindStringSubmatch(l); m != nil {
			out = append(out, corpusLayer{m[1], m[2], m[3], m[4], m[5] == "good"})
			continue
		}
		f := strings.Fields(l)
		if len(f) >= 2 {
			out = append(out, corpusLayer{id: f[0], kind: strings.TrimSuffix(f[1], ":")})
		}
	}
	return out
}

// TestVerifyCorpus walks every message of the corpus folders layer by
// layer, as far as no decryption is needed: each signed layer must have
// OpenSSL's verdict (good = Verified, SHA-1 included), the signer and the
// digest; an enveloped layer must be ErrNotSigned. The outermost verdict
// is also checked live against `openssl cms -verify -noverify` when
// OpenSSL is installed.
//
// One rule differs on purpose: a signed message attached as
// message/rfc822 (fastmail smime3.eml, layer "1.2.msg") is not the
// signature of the message that carries it, so VerifyEntity does not look
// inside it and says ErrNotSigned.
func TestVerifyCorpus(t *testing.T) {
	var openssl string
	if os.Getenv("DANEMILTER_INTEGRATION") == "1" || haveOpenSSL() {
		openssl = needOpenSSL(t)
	}
	var messages, layers, agree, live, liveAgree int
	for _, folder := range []string{"thunderbird-smime", "fastmail-smime"} {
		dir := filepath.Join(corpusDir, folder)
		f, err := os.Open(filepath.Join(dir, "EXPECTED.tsv"))
		if err != nil {
			t.Skipf("corpus absent (%v): check out the shared corpus beside the clone as ../shared/corpus", err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		header := true
		for sc.Scan() {
			if header {
				header = false
				continue
			}
			cols := strings.Split(sc.Text(), "\t")
			if len(cols) < 6 || !strings.HasSuffix(cols[0], ".eml") {
				continue
			}
			file, want := cols[0], parseLayers(cols[5])
			msg, err := os.ReadFile(filepath.Join(dir, file))
			if err != nil {
				t.Errorf("%s: %v", file, err)
				continue
			}
			messages++
			cur := msg
			for i, l := range want {
				layers++
				v, err := VerifyEntity(cur)
				ok := func(cond bool, format string, a ...any) {
					if cond {
						agree++
					} else {
						t.Errorf("%s layer %s (%s): "+format, append([]any{file, l.id, l.kind}, a...)...)
					}
				}
				if l.kind != "detached" && l.kind != "opaque" || strings.Contains(l.id, ".msg") {
					ok(errors.Is(err, ErrNotSigned), "want ErrNotSigned, got %v", err)
					break
				}
				verified := err == nil && v.Verified()
				if verified != l.good {
					ok(false, "Verify %v (%v), openssl %v", verified, err, l.good)
					break
				}
				if err != nil {
					ok(true, "")
					break // a bad layer that cannot be read: nothing inside to walk
				}
				r := v.Signers[0]
				form := map[string]Form{"detached": FormDetached, "opaque": FormOpaque}[l.kind]
				ok(v.Form == form && r.Certificate != nil && signerMatches(r, l.signer) &&
					strings.EqualFold(strings.ReplaceAll(r.Digest.String(), "-", ""), l.digest),
					"form %v, signer %v, digest %v; want %s %s %s", v.Form, subjectOf(r), r.Digest, l.kind, l.signer, l.digest)
				if i == 0 && l.id == "1" && openssl != "" { // openssl reads only a top-level signature
					live++
					if theirs := opensslVerifies(t, openssl, filepath.Join(dir, file)); theirs == verified {
						liveAgree++
					} else {
						t.Errorf("%s: openssl now says %v, Verify %v", file, theirs, verified)
					}
				}
				if l.digest == "sha1" && v.Valid() {
					t.Errorf("%s: SHA-1 signature is a pass", file)
				}
				cur = v.Content
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	t.Logf("corpus: %d messages, %d layers, Verify agrees with OpenSSL's recorded verdict on %d; live openssl cms -verify -noverify on %d outermost signatures, agrees on %d",
		messages, layers, agree, live, liveAgree)
}

func haveOpenSSL() bool {
	_, err := execLookPath("openssl")
	return err == nil
}

// signerMatches compares the certificate with the corpus's signer column:
// an address (subject emailAddress or SAN) or an OpenSSL one-line subject.
func signerMatches(r SignerResult, want string) bool {
	return strings.Contains(subjectOf(r), want)
}

// subjectOf renders the subject's attributes and SAN addresses.
func subjectOf(r SignerResult) string {
	if r.Certificate == nil {
		return "<none>"
	}
	var parts []string
	for _, n := range r.Certificate.Subject.Names {
		if s, ok := n.Value.(string); ok {
			parts = append(parts, s)
		}
	}
	var b strings.Builder
	for _, s := range append(parts, r.Certificate.EmailAddresses...) {
		b.WriteString(s + " ")
	}
	return b.String() + r.Certificate.Subject.String()
}

var execLookPath = exec.LookPath
