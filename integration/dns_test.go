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

// dnsEnv is NSD serving the signed zone and Unbound validating it.
type dnsEnv struct {
	dir          string
	nsdPort      int
	unboundPort  int
	ds           string // the zone's DS record, Unbound's trust anchor
	nsd, unbound *proc
}

func (d *dnsEnv) resolver() string { return fmt.Sprintf("127.0.0.1:%d", d.unboundPort) }

// startDNS writes the zone secure.test with an SMIMEA record "3 0 0 <cert>"
// for each of users, signs it with ldns-signzone (ECDSA P-256 KSK and ZSK,
// NSEC), serves it with NSD and starts Unbound validating with the zone's DS
// as trust anchor.
func startDNS(t *testing.T, dir string, nsdPort, unboundPort int, users ...*user) *dnsEnv {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := &dnsEnv{dir: dir, nsdPort: nsdPort, unboundPort: unboundPort}

	var zone strings.Builder
	fmt.Fprintf(&zone, "$ORIGIN %s\n$TTL 300\n", zoneName)
	fmt.Fprintf(&zone, "@ IN SOA ns1.%s hostmaster.%s 1 3600 600 86400 300\n", zoneName, zoneName)
	fmt.Fprintf(&zone, "@ IN NS ns1.%s\n", zoneName)
	fmt.Fprintf(&zone, "@ IN A 127.0.0.1\n")
	fmt.Fprintf(&zone, "ns1 IN A 127.0.0.1\n")
	fmt.Fprintf(&zone, "mx IN A 127.0.0.1\n")
	for _, u := range users {
		// RFC 8162 §2: usage 3 (DANE-EE), selector 0 (full certificate),
		// matching type 0 (exact): the record carries the whole DER.
		fmt.Fprintf(&zone, "%s IN SMIMEA 3 0 0 %s\n", smimeaOwner(u.addr), hex.EncodeToString(u.cert.Raw))
	}
	zoneFile := filepath.Join(dir, "secure.test.zone")
	writeFile(t, zoneFile, []byte(zone.String()), 0o644)

	// Keys: ldns-keygen prints the base name of the files it writes.
	ksk := strings.TrimSpace(string(run(t, dir, 30*time.Second, mustLookPath(t, "ldns-keygen"), "-a", "ECDSAP256SHA256", "-k", zoneName)))
	zsk := strings.TrimSpace(string(run(t, dir, 30*time.Second, mustLookPath(t, "ldns-keygen"), "-a", "ECDSAP256SHA256", zoneName)))
	// Inception an hour ago, so a little clock skew does not make it bogus.
	now := time.Now()
	run(t, dir, 30*time.Second, mustLookPath(t, "ldns-signzone"), "-o", zoneName,
		"-i", fmt.Sprint(now.Add(-time.Hour).Unix()), "-e", fmt.Sprint(now.Add(7*24*time.Hour).Unix()),
		zoneFile, zsk, ksk)
	signed := zoneFile + ".signed"
	if b, err := os.ReadFile(signed); err != nil || !strings.Contains(string(b), "RRSIG\tSMIMEA") {
		t.Fatalf("ldns-signzone did not sign the SMIMEA records (%v):\n%s", err, b)
	}
	ds := strings.TrimSpace(string(run(t, dir, 30*time.Second, mustLookPath(t, "ldns-key2ds"), "-n", "-2", ksk+".key")))
	if !regexp.MustCompile(`^secure\.test\.\s+\d+\s+IN\s+DS\s+\d+ 13 2 [0-9a-f]{64}$`).MatchString(ds) {
		t.Fatalf("unexpected DS from ldns-key2ds: %q", ds)
	}
	d.ds = ds

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
zone:
  name: "secure.test"
  zonefile: "%[3]s"
`, dir, nsdPort, signed), 0o644)
	d.nsd = startProc(t, "nsd", filepath.Join(dir, "nsd.log"), mustLookPath(t, "nsd"), "-d", "-c", nsdConf)
	// NSD forks; the process in its pid file is ours too.
	t.Cleanup(func() { stopPidFile(t, filepath.Join(dir, "nsd.pid"), d.nsd.pid()) })
	waitTCP(t, "nsd", fmt.Sprintf("127.0.0.1:%d", nsdPort), 15*time.Second, d.nsd.done)

	// Unbound: a validating resolver whose only trust anchor is the zone's
	// DS; test. is a static local zone unless told otherwise, and a stub on
	// 127.0.0.1 needs do-not-query-localhost: no.
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
  trust-anchor: "%[3]s"
remote-control:
  control-enable: no
stub-zone:
  name: "secure.test"
  stub-addr: 127.0.0.1@%[4]d
`, dir, unboundPort, ds, nsdPort), 0o644)
	d.unbound = startProc(t, "unbound", filepath.Join(dir, "unbound.log"), mustLookPath(t, "unbound"), "-d", "-c", ubConf)
	waitTCP(t, "unbound", d.resolver(), 15*time.Second, d.unbound.done)
	return d
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
