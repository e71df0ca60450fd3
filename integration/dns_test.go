package integration

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// zoneName is the signed zone the recipients' keys are published in.
const zoneName = "secure.test."

// dnsEnv is NSD serving the zones and Unbound validating them.
type dnsEnv struct {
	dir          string
	nsdPort      int
	unboundPort  int
	ds           string            // the DS record of secure.test, Unbound's trust anchor for it
	anchors      map[string]string // zone -> DS, every trust anchor Unbound has
	nsd, unbound *proc
}

func (d *dnsEnv) resolver() string { return fmt.Sprintf("127.0.0.1:%d", d.unboundPort) }

// zoneSpec describes one zone NSD serves.
type zoneSpec struct {
	name string // with the final dot, e.g. "secure.test."
	// signed: signed with ldns-signzone, its DS a trust anchor of Unbound.
	// Unsigned zones have no trust anchor, so Unbound answers them as
	// insecure (no AD bit).
	signed bool
	// users get an SMIMEA record "3 0 0 <certificate>" each.
	users []*user
	// tamper changes one hex digit of each SMIMEA record's certificate
	// after signing, so every SMIMEA RRset of the zone is bogus: its RRSIG
	// no longer matches.
	tamper bool
	// records are zone file lines written as they are after the users'
	// records, e.g. the output of "danemilter record smimea|openpgpkey".
	records []string
	// unreachable: NSD does not serve the zone; Unbound's stub for it
	// points at a port of 127.0.0.1 where nothing listens, so every
	// lookup in it is indeterminate (SERVFAIL or a timeout). The zone has
	// neither records nor a trust anchor.
	unreachable bool
}

// startDNS writes the zone secure.test with an SMIMEA record "3 0 0 <cert>"
// for each of users, signs it with ldns-signzone (ECDSA P-256 KSK and ZSK,
// NSEC), serves it with NSD and starts Unbound validating with the zone's DS
// as trust anchor.
func startDNS(t *testing.T, dir string, nsdPort, unboundPort int, users ...*user) *dnsEnv {
	t.Helper()
	return startDNSZones(t, dir, nsdPort, unboundPort, zoneSpec{name: zoneName, signed: true, users: users})
}

// startDNSZones writes and (when asked) signs the zones, serves them all
// with one NSD and starts Unbound with a stub zone for each and a trust
// anchor for each signed one.
func startDNSZones(t *testing.T, dir string, nsdPort, unboundPort int, zones ...zoneSpec) *dnsEnv {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := &dnsEnv{dir: dir, nsdPort: nsdPort, unboundPort: unboundPort, anchors: map[string]string{}}

	var nsdZones, anchors, stubs strings.Builder
	for _, z := range zones {
		if z.unreachable {
			fmt.Fprintf(&stubs, "stub-zone:\n  name: \"%s\"\n  stub-addr: 127.0.0.1@%d\n", strings.TrimSuffix(z.name, "."), freePorts(t, 1)[0])
			continue
		}
		file := writeZone(t, dir, z)
		if z.signed {
			var ds string
			file, ds = signZone(t, dir, z, file)
			d.anchors[z.name] = ds
			if z.name == zoneName {
				d.ds = ds
			}
			fmt.Fprintf(&anchors, "  trust-anchor: \"%s\"\n", ds)
		}
		bare := strings.TrimSuffix(z.name, ".")
		fmt.Fprintf(&nsdZones, "zone:\n  name: \"%s\"\n  zonefile: \"%s\"\n", bare, file)
		fmt.Fprintf(&stubs, "stub-zone:\n  name: \"%s\"\n  stub-addr: 127.0.0.1@%d\n", bare, nsdPort)
	}

	// NSD: no privilege drop, no database, everything in dir.
	nsdConf := filepath.Join(dir, "nsd.conf")
	writeFile(t, nsdConf, fmt.Appendf(nil, `server:
  ip-address: 127.0.0.1@%[2]d
  do-ip4: yes
  do-ip6: no
  username: ""
  chroot: ""
  database: ""
  zonesdir: "%[1]s"
  pidfile: "%[1]s/nsd.pid"
  xfrdfile: "%[1]s/xfrd.state"
  zonelistfile: "%[1]s/zone.list"
  xfrdir: "%[1]s"
  server-count: 1
  verbosity: 1
remote-control:
  control-enable: no
%[3]s`, dir, nsdPort, nsdZones.String()), 0o644)
	d.nsd = startProc(t, "nsd", filepath.Join(dir, "nsd.log"), mustLookPath(t, "nsd"), "-d", "-c", nsdConf)
	// NSD forks; the process in its pid file is ours too.
	t.Cleanup(func() { stopPidFile(t, filepath.Join(dir, "nsd.pid"), d.nsd.pid()) })
	waitTCP(t, "nsd", fmt.Sprintf("127.0.0.1:%d", nsdPort), 15*time.Second, d.nsd.done)

	// Unbound: a validating resolver whose only trust anchors are the
	// signed zones' DS records (no root anchor, so a zone without one is
	// insecure); test. is a static local zone unless told otherwise, and a
	// stub on 127.0.0.1 needs do-not-query-localhost: no.
	ubConf := filepath.Join(dir, "unbound.conf")
	writeFile(t, ubConf, fmt.Appendf(nil, `server:
  interface: 127.0.0.1@%[2]d
  do-ip4: yes
  do-ip6: no
  do-udp: yes
  do-tcp: yes
  username: ""
  chroot: ""
  directory: "%[1]s"
  pidfile: "%[1]s/unbound.pid"
  logfile: ""
  use-syslog: no
  do-daemonize: no
  num-threads: 1
  verbosity: 1
  val-log-level: 2
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  module-config: "validator iterator"
  ede: yes
  local-zone: "test." nodefault
%[3]sremote-control:
  control-enable: no
%[4]s`, dir, unboundPort, anchors.String(), stubs.String()), 0o644)
	d.unbound = startProc(t, "unbound", filepath.Join(dir, "unbound.log"), mustLookPath(t, "unbound"), "-d", "-c", ubConf)
	waitTCP(t, "unbound", d.resolver(), 15*time.Second, d.unbound.done)
	return d
}

// writeZone writes z's zone file into dir and returns its path.
func writeZone(t *testing.T, dir string, z zoneSpec) string {
	t.Helper()
	var zone strings.Builder
	fmt.Fprintf(&zone, "$ORIGIN %s\n$TTL 300\n", z.name)
	fmt.Fprintf(&zone, "@ IN SOA ns1.%s hostmaster.%s 1 3600 600 86400 300\n", z.name, z.name)
	fmt.Fprintf(&zone, "@ IN NS ns1.%s\n", z.name)
	fmt.Fprintf(&zone, "@ IN A 127.0.0.1\n")
	fmt.Fprintf(&zone, "ns1 IN A 127.0.0.1\n")
	fmt.Fprintf(&zone, "mx IN A 127.0.0.1\n")
	for _, u := range z.users {
		// RFC 8162 §2: usage 3 (DANE-EE), selector 0 (full certificate),
		// matching type 0 (exact): the record carries the whole DER.
		fmt.Fprintf(&zone, "%s IN SMIMEA 3 0 0 %s\n", smimeaOwner(u.addr), hex.EncodeToString(u.cert.Raw))
	}
	for _, r := range z.records {
		fmt.Fprintf(&zone, "%s\n", strings.TrimRight(r, "\r\n"))
	}
	file := filepath.Join(dir, strings.TrimSuffix(z.name, ".")+".zone")
	writeFile(t, file, []byte(zone.String()), 0o644)
	return file
}

// signZone signs zoneFile with new keys (ldns-keygen prints the base name of
// the files it writes), tampers with the SMIMEA records when z.tamper says
// so, and returns the signed file and the zone's DS record.
func signZone(t *testing.T, dir string, z zoneSpec, zoneFile string) (signed, ds string) {
	t.Helper()
	ksk := strings.TrimSpace(string(run(t, dir, 30*time.Second, mustLookPath(t, "ldns-keygen"), "-a", "ECDSAP256SHA256", "-k", z.name)))
	zsk := strings.TrimSpace(string(run(t, dir, 30*time.Second, mustLookPath(t, "ldns-keygen"), "-a", "ECDSAP256SHA256", z.name)))
	// Inception an hour ago, so a little clock skew does not make it bogus.
	now := time.Now()
	run(t, dir, 30*time.Second, mustLookPath(t, "ldns-signzone"), "-o", z.name,
		"-i", fmt.Sprint(now.Add(-time.Hour).Unix()), "-e", fmt.Sprint(now.Add(7*24*time.Hour).Unix()),
		zoneFile, zsk, ksk)
	signed = zoneFile + ".signed"
	b, err := os.ReadFile(signed)
	if err != nil || (len(z.users) > 0 && !strings.Contains(string(b), "RRSIG\tSMIMEA")) {
		t.Fatalf("ldns-signzone did not sign the SMIMEA records of %s (%v):\n%s", z.name, err, b)
	}
	if z.tamper {
		b = tamperSMIMEA(t, b)
		writeFile(t, signed, b, 0o644)
	}
	ds = strings.TrimSpace(string(run(t, dir, 30*time.Second, mustLookPath(t, "ldns-key2ds"), "-n", "-2", ksk+".key")))
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(z.name) + `\s+\d+\s+IN\s+DS\s+\d+ 13 2 [0-9a-f]{64}$`).MatchString(ds) {
		t.Fatalf("unexpected DS for %s from ldns-key2ds: %q", z.name, ds)
	}
	return signed, ds
}

// tamperSMIMEA changes one hex digit in the middle of the certificate of
// every SMIMEA record of a signed zone file (owner TTL IN SMIMEA 3 0 0 hex),
// leaving the RRSIGs as they were: the records no longer validate.
func tamperSMIMEA(t *testing.T, zone []byte) []byte {
	t.Helper()
	lines := strings.SplitAfter(string(zone), "\n")
	n := 0
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) != 8 || f[3] != "SMIMEA" {
			continue
		}
		data := []byte(f[7])
		j := len(data) / 2
		if data[j] == '0' {
			data[j] = '1'
		} else {
			data[j] = '0'
		}
		f[7] = string(data)
		lines[i] = strings.Join(f, "\t") + "\n"
		n++
	}
	if n == 0 {
		t.Fatalf("no SMIMEA record to tamper with in:\n%s", zone)
	}
	return []byte(strings.Join(lines, ""))
}

// digResult is the part of dig's output the test looks at.
type digResult struct {
	status string   // NOERROR, NXDOMAIN, SERVFAIL
	flags  []string // qr rd ra ad ...
	answer string   // the whole output
}

func (r digResult) has(flag string) bool {
	for _, f := range r.flags {
		if f == flag {
			return true
		}
	}
	return false
}

var (
	digStatus = regexp.MustCompile(`status: ([A-Z]+),`)
	digFlags  = regexp.MustCompile(`;; flags: ([a-z ]+);`)
	// An SMIMEA 3 0 0 record in dig's answer section.
	smimeaAnswer = regexp.MustCompile(`(?m)^[0-9a-f]{56}\._smimecert\.\S+\s+\d+\s+IN\s+SMIMEA\s+3 0 0 [0-9A-Fa-f]`)
)

// dig asks Unbound for name/qtype with DNSSEC records.
func (d *dnsEnv) dig(t *testing.T, qtype, name string) (digResult, error) {
	t.Helper()
	out, errOut, err := runErr("", 10*time.Second, mustLookPath(t, "dig"), "@127.0.0.1", "-p", fmt.Sprint(d.unboundPort),
		"+dnssec", "+time=2", "+tries=1", qtype, name)
	if err != nil {
		return digResult{}, fmt.Errorf("dig %s %s: %v\n%s%s", qtype, name, err, out, errOut)
	}
	r := digResult{answer: string(out)}
	if m := digStatus.FindStringSubmatch(r.answer); m != nil {
		r.status = m[1]
	}
	if m := digFlags.FindStringSubmatch(r.answer); m != nil {
		r.flags = strings.Fields(m[1])
	}
	if r.status == "" {
		return r, fmt.Errorf("dig %s %s: no answer:\n%s", qtype, name, out)
	}
	return r, nil
}

// requireSecure checks through dig that Unbound validates the zone: the
// SMIMEA record of each user with keys is answered with the AD bit, and
// the name of a user without keys is a validated NXDOMAIN.
func (d *dnsEnv) requireSecure(t *testing.T, withKey []*user, withoutKey []string) {
	t.Helper()
	for _, u := range withKey {
		name := smimeaOwner(u.addr)
		r, err := d.dig(t, "SMIMEA", name)
		if err != nil {
			t.Fatalf("precondition: %v", err)
		}
		if r.status != "NOERROR" || !r.has("ad") || !smimeaAnswer.MatchString(r.answer) {
			t.Fatalf("precondition: Unbound does not return a DNSSEC-validated (AD) SMIMEA record for %s (%s); "+
				"check the trust anchor and the stub zone. dig said:\n%s", u.addr, name, r.answer)
		}
	}
	for _, addr := range withoutKey {
		name := smimeaOwner(addr)
		r, err := d.dig(t, "SMIMEA", name)
		if err != nil {
			t.Fatalf("precondition: %v", err)
		}
		if r.status != "NXDOMAIN" || !r.has("ad") {
			t.Fatalf("precondition: want a validated NXDOMAIN (secure denial) for %s (%s); dig said:\n%s", addr, name, r.answer)
		}
	}
}

// stopPidFile sends SIGTERM to the process named in a pid file, if it is
// one the test started: a member of the process group of started (startProc
// gives each server its own group), and not started itself (which its proc
// cleanup stops).
func stopPidFile(t *testing.T, path string, started int) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var pid int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &pid); err != nil || pid <= 1 || pid == started {
		return
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return
	}
	// /proc/PID/stat: pid (comm) state ppid pgrp ...; comm may hold spaces.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(fields) < 3 || fields[2] != fmt.Sprint(started) {
		return
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err == nil {
		t.Logf("stopped pid %d from %s", pid, path)
	}
}
