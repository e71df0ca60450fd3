package smime

// The interoperability matrix: OpenSSL (an independent implementation)
// decrypts every combination Encrypt produces, and Decrypt reads every
// combination `openssl cms -encrypt` produces.

import (
	"bytes"
	"encoding/asn1"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// allTestCiphers is every Cipher Encrypt writes.
var allTestCiphers = []Cipher{AES128CBC, AES256CBC, AES128GCM, AES256GCM}

// encKeyMode is one way Encrypt hands a recipient the content key.
type encKeyMode struct {
	name string
	kind string // testKeys kind
	oaep bool   // Options.RSAOAEP
	// what `openssl cms -cmsout -print` must show for it
	want []string
}

var encKeyModes = []encKeyMode{
	{"rsa-v1.5", "rsa", false, []string{"d.ktri:", "rsaEncryption"}},
	{"rsa-oaep-sha256", "rsa", true, []string{"d.ktri:", "rsaesOaep", "sha256", "mgf1"}},
	{"p256", "p256", false, []string{"d.kari:", "version: 3", "d.originatorKey:", "id-ecPublicKey", "prime256v1", "dhSinglePass-stdDH-sha256kdf-scheme"}},
	{"p384", "p384", false, []string{"d.kari:", "version: 3", "d.originatorKey:", "secp384r1", "dhSinglePass-stdDH-sha384kdf-scheme"}},
	{"p521", "p521", false, []string{"d.kari:", "version: 3", "d.originatorKey:", "secp521r1", "dhSinglePass-stdDH-sha512kdf-scheme"}},
}

// opensslName is how `openssl cms -print` names a content cipher.
func opensslName(c Cipher) string {
	return map[Cipher]string{AES128CBC: "aes-128-cbc", AES256CBC: "aes-256-cbc", AES128GCM: "aes-128-gcm", AES256GCM: "aes-256-gcm"}[c]
}

// checkDER walks an encoding with encoding/asn1, which accepts only
// definite, minimal lengths: Encrypt's output must be DER throughout, down
// to every constructed element.
func checkDER(t testing.TB, b []byte) {
	t.Helper()
	var walk func([]byte, int)
	walk = func(b []byte, depth int) {
		for len(b) > 0 {
			var v asn1.RawValue
			rest, err := asn1.Unmarshal(b, &v)
			if err != nil {
				t.Fatalf("not DER at depth %d: %v", depth, err)
			}
			// Constructed elements, and the BIT STRING-free primitive
			// ones, nest: descend into constructed ones only.
			if v.IsCompound {
				walk(v.Bytes, depth+1)
			}
			b = rest
		}
	}
	walk(b, 0)
}

// opensslDecrypt runs `openssl cms -decrypt` on the file in and returns the
// plaintext.
func opensslDecrypt(t testing.TB, openssl, dir, in, inform, certPath, keyPath string) []byte {
	t.Helper()
	out := filepath.Join(dir, "plain.out")
	runOpenSSL(t, openssl, "cms", "-decrypt", "-binary", "-inform", inform, "-in", in, "-recip", certPath, "-inkey", keyPath, "-out", out)
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestOpenSSLDecryptsOurs is the first half of the matrix: every cipher x
// every key transport or agreement x both recipient identifiers, decrypted
// by `openssl cms -decrypt -inform DER` and by Decrypt, with the structure
// (content type, versions, algorithms) checked in `openssl cms -print`.
func TestOpenSSLDecryptsOurs(t *testing.T) {
	openssl := needOpenSSL(t)
	for _, c := range allTestCiphers {
		for _, m := range encKeyModes {
			for _, ski := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/%s/ski=%v", c, m.name, ski), func(t *testing.T) {
					t.Parallel()
					k := testKeys(t, m.kind, 1)[0]
					dir := t.TempDir()
					certPath, keyPath := writeKeyPEM(t, dir, "rcpt", k.Cert, k.Key)
					pt := randomBytes(70_001, byte(c)+1) // crosses a 64 KiB chunk
					var der bytes.Buffer
					opts := Options{Cipher: c, RSAOAEP: m.oaep, UseSKI: ski}
					if err := Encrypt(&der, bytes.NewReader(pt), int64(len(pt)), kindCerts([]kindKey{k}), opts); err != nil {
						t.Fatal(err)
					}
					checkDER(t, der.Bytes())
					derPath := filepath.Join(dir, "msg.der")
					if err := os.WriteFile(derPath, der.Bytes(), 0o600); err != nil {
						t.Fatal(err)
					}

					printed := string(runOpenSSL(t, openssl, "cms", "-cmsout", "-print", "-inform", "DER", "-in", derPath))
					want := append([]string{opensslName(c)}, m.want...)
					// Versions: RFC 5083 §2.1 AuthEnvelopedData 0; RFC
					// 5652 §6.1 EnvelopedData 0 only with version 0
					// RecipientInfos (ktri by issuer and serial), else 2;
					// §6.2.1 ktri 0 or 2 (SKI).
					kari := m.kind != "rsa"
					switch {
					case c.authenticated():
						want = append(want, "id-smime-ct-authEnvelopedData", "d.authEnvelopedData: \n    version: 0")
					case kari || ski:
						want = append(want, "pkcs7-envelopedData", "d.envelopedData: \n    version: 2")
					default:
						want = append(want, "pkcs7-envelopedData", "d.envelopedData: \n    version: 0")
					}
					switch {
					case !kari && ski:
						want = append(want, "d.ktri: \n        version: 2", "d.subjectKeyIdentifier:")
					case !kari:
						want = append(want, "d.ktri: \n        version: 0", "d.issuerAndSerialNumber:")
					case ski:
						want = append(want, "d.rKeyId:")
					default:
						want = append(want, "d.issuerAndSerialNumber:")
					}
					if c.authenticated() {
						want = append(want, "mac: \n      0000 - ", "INTEGER           :10") // 16-octet ICV
					}
					for _, w := range want {
						if !strings.Contains(printed, w) {
							t.Errorf("openssl cms -print lacks %q:\n%s", w, printed)
						}
					}

					if got := opensslDecrypt(t, openssl, dir, derPath, "DER", certPath, keyPath); !bytes.Equal(got, pt) {
						t.Errorf("openssl decrypted %d octets that differ from the %d of the plaintext", len(got), len(pt))
					}
					got, err := Decrypt(der.Bytes(), k.Key, k.Cert)
					if err != nil {
						t.Fatalf("Decrypt: %v", err)
					}
					if !bytes.Equal(got, pt) {
						t.Error("Decrypt: plaintext differs")
					}
				})
			}
		}
	}
}

// TestOpenSSLMixedRecipients encrypts one message for RSA, P-256, P-384 and
// P-521 recipients at once; each of them decrypts it with OpenSSL (from the
// whole S/MIME message, as the milter sends it) and with Decrypt.
func TestOpenSSLMixedRecipients(t *testing.T) {
	openssl := needOpenSSL(t)
	for _, c := range allTestCiphers {
		for _, oaep := range []bool{false, true} {
			for _, ski := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/oaep=%v/ski=%v", c, oaep, ski), func(t *testing.T) {
					t.Parallel()
					var ks []kindKey
					ks = append(ks, testKeys(t, "rsa", 2)...)
					for _, kind := range []string{"p256", "p384", "p521"} {
						ks = append(ks, testKeys(t, kind, 1)...)
					}
					pt := randomBytes(5000, 9)
					opts := Options{Cipher: c, RSAOAEP: oaep, UseSKI: ski}
					var body bytes.Buffer
					if err := EncryptBase64(&body, bytes.NewReader(pt), int64(len(pt)), kindCerts(ks), opts); err != nil {
						t.Fatal(err)
					}
					der, err := decodeBase64Body(body.Bytes())
					if err != nil {
						t.Fatal(err)
					}
					dir := t.TempDir()
					eml := filepath.Join(dir, "msg.eml")
					var msg bytes.Buffer
					msg.WriteString("From: sender@example.test\r\nTo: rcpt@example.test\r\nSubject: test\r\nMIME-Version: 1.0\r\n")
					for _, f := range OuterFieldsFor(c) {
						msg.WriteString(f.Name + ": " + f.Value + "\r\n")
					}
					msg.WriteString("\r\n")
					msg.Write(body.Bytes())
					if err := os.WriteFile(eml, msg.Bytes(), 0o600); err != nil {
						t.Fatal(err)
					}
					for i, k := range ks {
						certPath, keyPath := writeKeyPEM(t, dir, fmt.Sprintf("r%d", i), k.Cert, k.Key)
						if got := opensslDecrypt(t, openssl, dir, eml, "SMIME", certPath, keyPath); !bytes.Equal(got, pt) {
							t.Errorf("recipient %d (%s): openssl plaintext differs", i, k.Kind)
						}
						got, err := Decrypt(der, k.Key, k.Cert)
						if err != nil || !bytes.Equal(got, pt) {
							t.Errorf("recipient %d (%s): Decrypt: %v", i, k.Kind, err)
						}
						got, err = DecryptMIME(bytes.NewReader(msg.Bytes()), k.Key, k.Cert)
						if err != nil || !bytes.Equal(got, pt) {
							t.Errorf("recipient %d (%s): DecryptMIME: %v", i, k.Kind, err)
						}
					}
				})
			}
		}
	}
}

// opensslKeyMode is one way `openssl cms -encrypt` hands over the key.
type opensslKeyMode struct {
	name   string
	kind   string
	keyopt []string
}

var opensslKeyModes = []opensslKeyMode{
	{"rsa", "rsa", nil},
	{"rsa-oaep-sha1", "rsa", []string{"rsa_padding_mode:oaep"}},
	{"rsa-oaep-sha256", "rsa", []string{"rsa_padding_mode:oaep", "rsa_oaep_md:sha256"}},
	{"p256", "p256", nil}, // OpenSSL's default: dhSinglePass-stdDH-sha1kdf-scheme
	{"p256-sha256kdf", "p256", []string{"ecdh_kdf_md:sha256"}},
	{"p384", "p384", nil},
	{"p384-cofactor-sha384kdf", "p384", []string{"ecdh_kdf_md:sha384", "ecdh_cofactor_mode:1"}},
	{"p521-sha512kdf", "p521", []string{"ecdh_kdf_md:sha512"}},
}

// TestDecryptOpenSSLOutput is the second half of the matrix: `openssl cms
// -encrypt -binary -outform DER` with every AES cipher (CBC gives
// EnvelopedData, GCM AuthEnvelopedData) x RSA v1.5, RSA-OAEP (SHA-1,
// SHA-256) and ECDH on P-256, P-384, P-521 (several KDFs) x issuer and
// serial or -keyid x definite lengths or -stream (indefinite-length BER
// with a constructed OCTET STRING); Decrypt must recover the plaintext.
func TestDecryptOpenSSLOutput(t *testing.T) {
	openssl := needOpenSSL(t)
	for _, cipherFlag := range []string{"-aes128", "-aes192", "-aes256", "-aes-128-gcm", "-aes-192-gcm", "-aes-256-gcm"} {
		for _, m := range opensslKeyModes {
			for _, keyid := range []bool{false, true} {
				for _, stream := range []bool{false, true} {
					t.Run(fmt.Sprintf("%s/%s/keyid=%v/stream=%v", cipherFlag, m.name, keyid, stream), func(t *testing.T) {
						t.Parallel()
						k := testKeys(t, m.kind, 1)[0]
						dir := t.TempDir()
						certPath, _ := writeKeyPEM(t, dir, "rcpt", k.Cert, k.Key)
						pt := randomBytes(3000, 5)
						in := filepath.Join(dir, "plain")
						if err := os.WriteFile(in, pt, 0o600); err != nil {
							t.Fatal(err)
						}
						out := filepath.Join(dir, "msg.der")
						args := []string{"cms", "-encrypt", "-binary", "-outform", "DER", cipherFlag, "-in", in, "-out", out}
						if keyid {
							args = append(args, "-keyid")
						}
						if stream {
							args = append(args, "-stream")
						}
						args = append(args, "-recip", certPath)
						for _, o := range m.keyopt {
							args = append(args, "-keyopt", o)
						}
						runOpenSSL(t, openssl, args...)
						der, err := os.ReadFile(out)
						if err != nil {
							t.Fatal(err)
						}
						if stream && !bytes.HasPrefix(der, []byte{0x30, 0x80}) {
							t.Errorf("-stream output does not start with an indefinite length: % x", der[:4])
						}
						got, err := Decrypt(der, k.Key, k.Cert)
						if err != nil {
							t.Fatalf("Decrypt: %v", err)
						}
						if !bytes.Equal(got, pt) {
							t.Fatal("Decrypt: plaintext differs")
						}
					})
				}
			}
		}
	}
}

// TestDecryptMIMEOpenSSL reads OpenSSL's own S/MIME output (headers and
// base64 body) for several recipients at once.
func TestDecryptMIMEOpenSSL(t *testing.T) {
	openssl := needOpenSSL(t)
	ks := []kindKey{testKeys(t, "rsa", 1)[0], testKeys(t, "p256", 1)[0], testKeys(t, "p384", 1)[0]}
	for _, cipherFlag := range []string{"-aes256", "-aes-256-gcm"} {
		t.Run(cipherFlag, func(t *testing.T) {
			dir := t.TempDir()
			pt := []byte("Content-Type: text/plain\r\n\r\nHello from OpenSSL.\r\n")
			in := filepath.Join(dir, "plain")
			if err := os.WriteFile(in, pt, 0o600); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "msg.eml")
			args := []string{"cms", "-encrypt", "-binary", cipherFlag, "-in", in, "-out", out}
			for i, k := range ks {
				certPath, _ := writeKeyPEM(t, dir, fmt.Sprintf("r%d", i), k.Cert, k.Key)
				args = append(args, certPath)
			}
			runOpenSSL(t, openssl, args...)
			eml, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			for i, k := range ks {
				got, err := DecryptMIME(bytes.NewReader(eml), k.Key, k.Cert)
				if err != nil {
					t.Fatalf("recipient %d (%s): %v\n%s", i, k.Kind, err, eml[:min(len(eml), 400)])
				}
				if !bytes.Equal(got, pt) {
					t.Fatalf("recipient %d: plaintext differs", i)
				}
			}
		})
	}
}
