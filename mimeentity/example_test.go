package mimeentity_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"strings"

	"github.com/danemilter/danemilter/mimeentity"
)

// An MTA filter decides per message: leave already-encrypted mail alone.
func ExampleIsEncrypted() {
	for _, ct := range []string{
		`application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"`,
		`multipart/encrypted; protocol="application/pgp-encrypted"; boundary="x"`,
		`application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"`,
		`text/plain; charset=utf-8`,
	} {
		fmt.Println(mimeentity.IsEncrypted(ct), ct)
	}
	// Output:
	// true application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"
	// true multipart/encrypted; protocol="application/pgp-encrypted"; boundary="x"
	// false application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"
	// false text/plain; charset=utf-8
}

// The Content-* fields of the original message move inside the encryption;
// the others stay where they are.
func ExampleIsEntityField() {
	for _, name := range []string{"From", "Subject", "MIME-Version", "Content-Type", "content-transfer-encoding"} {
		fmt.Printf("%s: %v\n", name, mimeentity.IsEntityField(name))
	}
	// Output:
	// From: false
	// Subject: false
	// MIME-Version: false
	// Content-Type: true
	// content-transfer-encoding: true
}

// The entity's own fields, as an MTA passed them (bare LF in a folded
// value), written CRLF-terminated; a new field folded to 78 characters.
func ExampleWriteField() {
	var b strings.Builder
	mimeentity.WriteField(&b, "Content-Type", " text/plain;\n\tcharset=utf-8")
	b.WriteString(mimeentity.FoldField("Subject", mimeentity.UnfoldValue(
		"A subject long enough\r\n to need folding when it is written out again, at seventy-eight characters")))
	fmt.Printf("%q\n", b.String())
	// Output:
	// "Content-Type: text/plain;\r\n\tcharset=utf-8\r\nSubject: A subject long enough to need folding when it is written out again,\r\n at seventy-eight characters\r\n"
}

// The body of an application/pkcs7-mime entity: base64 in lines of 76
// characters, each ended by CRLF.
func ExampleBase64Writer() {
	var out bytes.Buffer
	w := mimeentity.NewBase64Writer(&out, 0, 100)
	w.Write(bytes.Repeat([]byte("danemilter "), 6))
	if err := w.Close(); err != nil {
		fmt.Println(err)
	}
	fmt.Print(strings.ReplaceAll(out.String(), "\r\n", "|\n"))
	back, _ := io.ReadAll(mimeentity.NewBase64Reader(&out))
	fmt.Println(string(back[:10]))
	// Output:
	// ZGFuZW1pbHRlciBkYW5lbWlsdGVyIGRhbmVtaWx0ZXIgZGFuZW1pbHRlciBkYW5lbWlsdGVyIGRh|
	// bmVtaWx0ZXIg|
	// danemilter
}

// Ciphertext looks random; text, however it is labelled, does not.
func ExampleByteStats() {
	var text, cipher mimeentity.ByteStats
	io.WriteString(&text, strings.Repeat("Dear Bob, the quarterly numbers are attached.\r\n", 20))
	io.CopyN(&cipher, rand.Reader, 1000)
	fmt.Println(text.Random(), cipher.Random())
	// Output:
	// false true
}
