package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/openpgp"
)

// runRecord prints the zone file line of an SMIMEA or OPENPGPKEY record:
//
//	danemilter record smimea [--usage 3 --selector 0 --matching 0] --cert FILE ADDR
//	danemilter record openpgpkey --key FILE ADDR
func runRecord(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "smimea" && args[0] != "openpgpkey") {
		fmt.Fprintln(stderr, "usage: danemilter record smimea|openpgpkey [flags] ADDR (see --help)")
		return 2
	}
	kind := args[0]
	fs := flag.NewFlagSet("record "+kind, flag.ContinueOnError)
	fs.SetOutput(stderr)
	usage := fs.Uint("usage", dane.UsageDANEEE, "SMIMEA certificate usage: 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE")
	selector := fs.Uint("selector", dane.SelectorCert, "SMIMEA selector: 0 certificate, 1 SubjectPublicKeyInfo")
	matching := fs.Uint("matching", dane.MatchingFull, "SMIMEA matching type: 0 full, 1 SHA-256, 2 SHA-512")
	certFile := fs.String("cert", "", "PEM or DER certificate (smimea)")
	keyFile := fs.String("key", "", "OpenPGP public key, binary or ASCII-armored, e.g. from gpg --export (openpgpkey)")
	ttl := fs.Uint("ttl", 3600, "TTL of the record")
	lower := fs.Bool("lowercase", false, "hash the lowercased local part (as hash-slinger does)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "danemilter record: want exactly one address")
		return 2
	}
	addr := fs.Arg(0)
	var rr dns.RR
	var err error
	if kind == "smimea" {
		rr, err = smimeaRecord(addr, *certFile, uint8(*usage), uint8(*selector), uint8(*matching), uint32(*ttl), *lower)
	} else {
		rr, err = openpgpkeyRecord(addr, *keyFile, uint32(*ttl), *lower)
	}
	if err != nil {
		fmt.Fprintln(stderr, "danemilter record:", err)
		return 1
	}
	fmt.Fprintln(stdout, rr.String())
	return 0
}

func smimeaRecord(addr, file string, usage, selector, matching uint8, ttl uint32, lower bool) (dns.RR, error) {
	if usage > 3 || selector > 1 || matching > 2 {
		return nil, fmt.Errorf("parameters %d %d %d: usage 0-3, selector 0-1, matching 0-2", usage, selector, matching)
	}
	if file == "" {
		return nil, fmt.Errorf("--cert is required")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: PEM block %q, want CERTIFICATE", file, blk.Type)
		}
		b = blk.Bytes
	}
	cert, err := x509.ParseCertificate(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return smimeaRR(addr, file, cert, usage, selector, matching, ttl, lower)
}

// smimeaRR renders the SMIMEA record of cert (named what in errors) for
// addr, checked as the daemon checks a certificate it would encrypt to.
func smimeaRR(addr, what string, cert *x509.Certificate, usage, selector, matching uint8, ttl uint32, lower bool) (dns.RR, error) {
	// A DANE-EE or PKIX-EE record should name a certificate the recipient
	// can use; say so when it cannot (a TA record names a CA).
	if usage == dane.UsageDANEEE || usage == dane.UsagePKIXEE {
		if reason := dane.CheckCertificate(addr, cert, time.Now()); reason != "" {
			return nil, fmt.Errorf("%s cannot be used to encrypt to %s: %s", what, addr, reason)
		}
	}
	name, err := dane.SMIMEAName(addr, lower)
	if err != nil {
		return nil, err
	}
	content := cert.Raw
	if selector == dane.SelectorSPKI {
		content = cert.RawSubjectPublicKeyInfo
	}
	switch matching {
	case dane.MatchingSHA256:
		s := sha256.Sum256(content)
		content = s[:]
	case dane.MatchingSHA512:
		s := sha512.Sum512(content)
		content = s[:]
	}
	return &dns.SMIMEA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSMIMEA, Class: dns.ClassINET, Ttl: ttl},
		Usage: usage, Selector: selector, MatchingType: matching, Certificate: hex.EncodeToString(content)}, nil
}

func openpgpkeyRecord(addr, file string, ttl uint32, lower bool) (dns.RR, error) {
	if file == "" {
		return nil, fmt.Errorf("--key is required")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if blk, err := armor.Decode(bytes.NewReader(b)); err == nil {
		if b, err = io.ReadAll(blk.Body); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	// RFC 7929 §2.1: binary transferable public keys, no armor, no secret
	// key material; check that the daemon itself would use it.
	ents, err := pgp.ReadKeyRing(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return openpgpkeyRR(addr, file, ents, ttl, lower)
}

// openpgpkeyRR renders the OPENPGPKEY record of the public keys of ents
// (named what in errors; secret key material is never serialized) for
// addr, checked by openpgp.SelectKeys as the daemon selects keys.
func openpgpkeyRR(addr, what string, ents pgp.EntityList, ttl uint32, lower bool) (dns.RR, error) {
	var pub bytes.Buffer
	for _, e := range ents {
		if err := e.Serialize(&pub); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
	}
	name, err := dane.OPENPGPKEYName(addr, lower)
	if err != nil {
		return nil, err
	}
	rr := &dns.OPENPGPKEY{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeOPENPGPKEY, Class: dns.ClassINET, Ttl: ttl},
		PublicKey: base64.StdEncoding.EncodeToString(pub.Bytes())}
	if keys, rejected := openpgp.SelectKeys(addr, []dns.RR{rr}, time.Now()); len(keys) == 0 {
		reason := "no usable key"
		if len(rejected) > 0 {
			reason = rejected[0].Reason
		}
		return nil, fmt.Errorf("%s cannot be used to encrypt to %s: %s", what, addr, reason)
	}
	return rr, nil
}
