package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"

	"github.com/danemilter/danemilter/config"
	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/keydir"
)

// runKeys manages the gateway's key directory (package keydir):
//
//	danemilter keys [--config FILE | --dir PATH] generate [--smime rsa3072|p256|none] [--openpgp cv25519|rsa3072|none] [--valid 2y] ADDR... | --list FILE
//	danemilter keys [--dir PATH] import --pkcs12 FILE [--password-file F] ADDR | --pem CERT KEY ADDR | --gpg FILE [--passphrase-file F] ADDR
//	danemilter keys [--dir PATH] list
//	danemilter keys [--dir PATH] records [--smimea 3-0-0|3-1-1] [--ttl N] [ADDR...]
func runKeys(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keys", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "key directory (default: gateway.key_dir of the configuration)")
	cfgPath := fs.String("config", "/etc/danemilter/danemilter.toml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: danemilter keys [--dir PATH] generate|import|list|records ... (see --help)")
		return 2
	}
	root, err := keyDirPath(*dir, *cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "danemilter keys:", err)
		return 2
	}
	sub, rest := fs.Arg(0), fs.Args()[1:]
	switch sub {
	case "generate":
		return keysGenerate(root, rest, stdout, stderr)
	case "import":
		return keysImport(root, rest, stdout, stderr)
	case "list":
		return keysList(root, stdout, stderr)
	case "records":
		return keysRecords(root, rest, stdout, stderr)
	}
	fmt.Fprintf(stderr, "danemilter keys: unknown command %q (generate, import, list, records)\n", sub)
	return 2
}

// keyDirPath is --dir, or else the configuration's gateway.key_dir.
func keyDirPath(dir, cfgPath string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return "", err
	}
	if cfg.Gateway.KeyDir == "" {
		return "", fmt.Errorf("%s sets no gateway.key_dir; give --dir PATH", cfgPath)
	}
	return cfg.Gateway.KeyDir, nil
}

func keysGenerate(root string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keys generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	smimeAlg := fs.String("smime", keydir.SMIMERSA3072, "S/MIME key: rsa3072, p256 or none")
	pgpAlg := fs.String("openpgp", keydir.OpenPGPCv25519, "OpenPGP key: cv25519, rsa3072 or none")
	valid := fs.String("valid", "2y", "validity: Ny, Nd or a Go duration")
	list := fs.String("list", "", "file of addresses, one a line (# comments)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	validity, err := parseValidity(*valid)
	if err != nil {
		fmt.Fprintln(stderr, "danemilter keys generate:", err)
		return 2
	}
	addrs := fs.Args()
	if *list != "" {
		l, err := readAddressList(*list)
		if err != nil {
			fmt.Fprintln(stderr, "danemilter keys generate:", err)
			return 2
		}
		addrs = append(addrs, l...)
	}
	if len(addrs) == 0 || (*smimeAlg == "none" && *pgpAlg == "none") {
		fmt.Fprintln(stderr, "usage: danemilter keys generate [--smime rsa3072|p256|none] [--openpgp cv25519|rsa3072|none] [--valid 2y] ADDR... | --list FILE")
		return 2
	}
	opts := keydir.Options{Validity: validity}
	for _, a := range addrs {
		if *smimeAlg != "none" {
			k, err := keydir.GenerateSMIME(a, *smimeAlg, opts)
			if err != nil {
				fmt.Fprintln(stderr, "danemilter keys generate:", err)
				return 1
			}
			if reason := checkSMIME(a, k); reason != "" {
				fmt.Fprintf(stderr, "danemilter keys generate: %s: generated certificate refused: %s\n", a, reason)
				return 1
			}
			p, err := keydir.WriteSMIME(root, a, k)
			if err != nil {
				fmt.Fprintln(stderr, "danemilter keys generate:", err)
				return 1
			}
			fmt.Fprintf(stdout, "%s: S/MIME %s, %s\n", a, *smimeAlg, p)
		}
		if *pgpAlg != "none" {
			e, err := keydir.GenerateOpenPGP(a, *pgpAlg, opts)
			if err != nil {
				fmt.Fprintln(stderr, "danemilter keys generate:", err)
				return 1
			}
			p, err := keydir.WriteOpenPGP(root, a, e)
			if err != nil {
				fmt.Fprintln(stderr, "danemilter keys generate:", err)
				return 1
			}
			fmt.Fprintf(stdout, "%s: OpenPGP %s %X, %s\n", a, *pgpAlg, e.PrimaryKey.Fingerprint, p)
		}
	}
	return openCheck(root, stderr)
}

// checkSMIME is the daemon's own judgement of k for addr: encryption and
// signing, now.
func checkSMIME(addr string, k keydir.SMIMEKey) string {
	now := time.Now()
	if r := dane.CheckCertificate(addr, k.Cert, now); r != "" {
		return r
	}
	return dane.CheckSigningCertificate(addr, k.Cert, now)
}

// openCheck opens the directory as the daemon will and reports what it
// refuses.
func openCheck(root string, stderr io.Writer) int {
	if _, err := keydir.Open(root, nil); err != nil {
		fmt.Fprintln(stderr, "danemilter keys: the daemon will not use the key directory:", err)
		return 1
	}
	return 0
}

func keysImport(root string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keys import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	p12 := fs.String("pkcs12", "", "PKCS#12 file (.p12, .pfx)")
	pwFile := fs.String("password-file", "", "file whose first line is the PKCS#12 password (default: empty password)")
	pemCert := fs.String("pem", "", "PEM certificate file (the key file follows as an argument)")
	gpgFile := fs.String("gpg", "", "output of gpg --export-secret-keys, binary or armored")
	ppFile := fs.String("passphrase-file", "", "file whose first line is the OpenPGP key's passphrase")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	n := 0
	for _, s := range []string{*p12, *pemCert, *gpgFile} {
		if s != "" {
			n++
		}
	}
	want := 1
	if *pemCert != "" {
		want = 2
	}
	if n != 1 || fs.NArg() != want {
		fmt.Fprintln(stderr, "usage: danemilter keys import --pkcs12 FILE [--password-file F] ADDR | --pem CERT KEY ADDR | --gpg FILE [--passphrase-file F] ADDR")
		return 2
	}
	addr := fs.Arg(fs.NArg() - 1)
	fail := func(err error) int {
		fmt.Fprintln(stderr, "danemilter keys import:", err)
		return 1
	}
	switch {
	case *p12 != "" || *pemCert != "":
		var k keydir.SMIMEKey
		if *p12 != "" {
			data, err := os.ReadFile(*p12)
			if err != nil {
				return fail(err)
			}
			pw, err := readSecretLine(*pwFile)
			if err != nil {
				return fail(err)
			}
			if k, err = keydir.ImportPKCS12(data, string(pw), addr); err != nil {
				return fail(fmt.Errorf("%s: %w", *p12, err))
			}
		} else {
			c, err := os.ReadFile(*pemCert)
			if err != nil {
				return fail(err)
			}
			key, err := os.ReadFile(fs.Arg(0))
			if err != nil {
				return fail(err)
			}
			if k, err = keydir.ImportPEM(c, key, addr); err != nil {
				return fail(fmt.Errorf("%s, %s: %w", *pemCert, fs.Arg(0), err))
			}
		}
		if reason := dane.CheckCertificate(addr, k.Cert, time.Now()); reason != "" {
			fmt.Fprintf(stderr, "danemilter keys import: warning: %s cannot be published for encryption: %s (stored for decryption)\n", addr, reason)
		}
		p, err := keydir.WriteSMIME(root, addr, k)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "%s: S/MIME %s\n", addr, p)
	default:
		data, err := os.ReadFile(*gpgFile)
		if err != nil {
			return fail(err)
		}
		var pp []byte
		if *ppFile != "" {
			if pp, err = readSecretLine(*ppFile); err != nil {
				return fail(err)
			}
		}
		ents, err := keydir.ImportGPG(data, pp, addr)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", *gpgFile, err))
		}
		for _, e := range ents {
			p, err := keydir.WriteOpenPGP(root, addr, e)
			if err != nil {
				return fail(err)
			}
			fmt.Fprintf(stdout, "%s: OpenPGP %X, %s\n", addr, e.PrimaryKey.Fingerprint, p)
		}
	}
	return openCheck(root, stderr)
}

func keysList(root string, stdout, stderr io.Writer) int {
	d, err := keydir.Open(root, nil)
	if d == nil {
		fmt.Fprintln(stderr, "danemilter keys list:", err)
		return 1
	}
	code := 0
	if err != nil {
		fmt.Fprintln(stderr, "danemilter keys list:", err)
		code = 1
	}
	now := time.Now()
	for _, e := range d.List() {
		exp := "-"
		if !e.NotAfter.IsZero() {
			exp = e.NotAfter.UTC().Format("2006-01-02")
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Address, e.Kind, e.Fingerprint, e.Algorithm, exp, e.ExpiryText(now))
	}
	return code
}

func keysRecords(root string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keys records", flag.ContinueOnError)
	fs.SetOutput(stderr)
	params := fs.String("smimea", "3-0-0", "SMIMEA usage-selector-matching: 3-0-0 (full certificate) or 3-1-1 (SHA-256 of the public key)")
	ttl := fs.Uint("ttl", 3600, "TTL of the records")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var sel, match uint8
	switch *params {
	case "3-0-0":
	case "3-1-1":
		sel, match = dane.SelectorSPKI, dane.MatchingSHA256
	default:
		fmt.Fprintln(stderr, "danemilter keys records: --smimea 3-0-0 or 3-1-1")
		return 2
	}
	d, err := keydir.Open(root, nil)
	if d == nil {
		fmt.Fprintln(stderr, "danemilter keys records:", err)
		return 1
	}
	code := 0
	if err != nil {
		fmt.Fprintln(stderr, "danemilter keys records:", err)
		code = 1
	}
	addrs := fs.Args()
	if len(addrs) == 0 {
		seen := map[string]bool{}
		for _, e := range d.List() {
			if !seen[e.Address] {
				seen[e.Address] = true
				addrs = append(addrs, e.Address)
			}
		}
	}
	now := time.Now()
	for _, a := range addrs {
		ks, es := d.SMIME(a), d.OpenPGP(a)
		if len(ks) == 0 && len(es) == 0 {
			fmt.Fprintf(stderr, "danemilter keys records: no keys for %s\n", a)
			code = 1
			continue
		}
		for _, k := range ks {
			if now.After(k.Cert.NotAfter) {
				fmt.Fprintf(stdout, "; %s: S/MIME certificate expired %s, not published\n", a, k.Cert.NotAfter.UTC().Format("2006-01-02"))
				continue
			}
			rr, err := smimeaRR(a, "S/MIME certificate of "+a, k.Cert, dane.UsageDANEEE, sel, match, uint32(*ttl), false)
			if err != nil {
				fmt.Fprintln(stderr, "danemilter keys records:", err)
				code = 1
				continue
			}
			fmt.Fprintln(stdout, rr.String())
		}
		for _, e := range es {
			rr, err := openpgpkeyRR(a, fmt.Sprintf("OpenPGP key %X", e.PrimaryKey.Fingerprint), pgp.EntityList{e}, uint32(*ttl), false)
			if err != nil {
				fmt.Fprintln(stderr, "danemilter keys records:", err)
				code = 1
				continue
			}
			fmt.Fprintln(stdout, rr.String())
		}
	}
	return code
}

// parseValidity reads "2y", "90d" or a Go duration.
func parseValidity(s string) (time.Duration, error) {
	day := 24 * time.Hour
	for suffix, unit := range map[string]time.Duration{"y": 365 * day, "d": day} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.Atoi(n)
			if err != nil || v <= 0 {
				return 0, fmt.Errorf("validity %q: want e.g. 2y, 90d, 720h", s)
			}
			return time.Duration(v) * unit, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("validity %q: want e.g. 2y, 90d, 720h", s)
	}
	return d, nil
}

// readAddressList reads addresses, one a line; blank lines and # comments
// are skipped.
func readAddressList(file string) ([]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = strings.TrimSpace(l[:i])
		}
		if l != "" {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// readSecretLine returns the first line of file (a password), or nil for
// no file.
func readSecretLine(file string) ([]byte, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 && len(b) > 0 && b[0] != '\n' {
		return nil, errors.New(file + ": no password line")
	}
	return line, nil
}
