package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

// largeMessage builds a multipart/mixed message of exactly size bytes (CRLF
// line ends): a text part and a base64 attachment of random bytes, as a
// scanned contract or a slide deck would be.
func largeMessage(t *testing.T, size int) []byte {
	t.Helper()
	head := fmt.Sprintf("From: Sender <sender@local.test>\r\nTo: partner@keys.test\r\nSubject: large %d\r\nDate: Wed, 02 Dec 2026 12:00:00 +0000\r\nMessage-ID: <large-%d@local.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b-large\"\r\n\r\n", size, size)
	text := "--b-large\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe contract is attached.\r\n\r\n--b-large\r\nContent-Type: application/octet-stream; name=\"contract.pdf\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"contract.pdf\"\r\n\r\n"
	tail := "--b-large--\r\n"
	room := size - len(head) - len(text) - len(tail)
	if room < 100 {
		t.Fatalf("size %d too small", size)
	}
	var b bytes.Buffer
	b.Grow(size)
	b.WriteString(head)
	b.WriteString(text)
	raw := make([]byte, 57)
	for room > 0 {
		if _, err := rand.Read(raw); err != nil {
			t.Fatal(err)
		}
		line := base64.StdEncoding.EncodeToString(raw) // 76 characters
		switch {
		case room >= 78+4 || room == 78:
			b.WriteString(line + "\r\n")
			room -= 78
		default:
			// The last line: shorter, a multiple of 4 characters.
			n := room - 2
			b.WriteString(strings.Repeat("A", n) + "\r\n")
			room = 0
		}
	}
	b.WriteString(tail)
	if b.Len() != size {
		t.Fatalf("built %d bytes, want %d", b.Len(), size)
	}
	return b.Bytes()
}

// largeQueueLimit is the Postfix message_size_limit (main.cf: queue files,
// and so encrypted copies) of TestKeysEndToEnd, as the README recommends:
// the client-facing smtpd keeps the default 10,240,000 bytes, and 1.42 times
// that holds any message a client may send once it is encrypted (PGP/MIME
// grows by 66/48 = 1.375, S/MIME by 78/57 = 1.368, plus keys and framing).
const largeQueueLimit = 14_500_000

// largeSizes are the sizes of issue 8: 1 MB, 5 MB and just under Postfix's
// default message_size_limit (10,240,000 bytes, which counts the envelope
// too, and withMarker adds a header).
var largeSizes = []int{1_000_000, 5_000_000, 10_200_000}

// testLarge sends each size to an S/MIME CBC, an S/MIME GCM and an OpenPGP
// recipient through the real Postfix and proves with openssl and gpg that
// what arrives is the original entity.
func (k *keysEnv) testLarge(t *testing.T) {
	for _, size := range largeSizes {
		orig := largeMessage(t, size)
		t.Run(fmt.Sprintf("smime-cbc-%d", size), func(t *testing.T) {
			msg := k.deliverLarge(t, k.bothS.addr, orig)
			k.checkEncrypted(t, msg, orig, 1, k.bothS)
		})
		t.Run(fmt.Sprintf("smime-gcm-%d", size), func(t *testing.T) {
			msg := k.deliverLarge(t, k.gcm.addr, orig)
			k.checkSMIME(t, msg, orig, "authEnveloped-data", 1, k.gcm)
		})
		t.Run(fmt.Sprintf("openpgp-%d", size), func(t *testing.T) {
			msg := k.deliverLarge(t, k.rsaPGP.addr, orig)
			k.checkPGP(t, msg, orig, []*pgpUser{k.rsaPGP}, k.rsaPGP)
		})
	}
	t.Run("split-9000000", k.testLargeSplit)
	t.Run("too-big-once-encrypted", k.testTooBig)
}

// noKey is an address of the signed zone with no record: a secure denial,
// so at level dane it gets plaintext.
const noKey = "nokey@keys.test"

// testLargeSplit: 9 MB to one keyed and one keyless recipient: the
// re-injected plaintext copy and the encrypted copy both arrive, exactly once.
func (k *keysEnv) testLargeSplit(t *testing.T) {
	orig := largeMessage(t, 9_000_000)
	start := time.Now()
	ds := k.deliverAll(t, []string{k.bothS.addr, noKey}, orig, 3*time.Second)
	t.Logf("9,000,000 bytes split in %v", time.Since(start).Round(time.Millisecond))
	if len(ds) != 2 {
		t.Fatalf("%d deliveries, want 2 (an encrypted and a plaintext copy)", len(ds))
	}
	for _, d := range ds {
		if len(d.rcpts) != 1 {
			t.Errorf("one copy carries %v, want one recipient per copy", d.rcpts)
			continue
		}
		if strings.EqualFold(d.rcpts[0], noKey) {
			checkPlain(t, noKey, d.data, orig)
			continue
		}
		k.checkEncrypted(t, d.data, orig, 1, k.bothS)
	}
}

// testTooBig: a message that the queue cannot hold once encrypted (11 MB
// through the smtpd that takes 20 MB; encrypted it would be about 15.2 MB,
// over the 14.5 MB queue limit) is refused by danemilter with 552 5.3.4
// before any copy leaves, alone and as a split: the sink gets nothing, in
// particular no plaintext copy. Without the check Postfix's cleanup refuses
// it (552 5.3.4 "message file too big") only after the split's plaintext
// copy was re-injected.
func (k *keysEnv) testTooBig(t *testing.T) {
	orig := largeMessage(t, 11_000_000)
	for _, rcpts := range [][]string{{k.bothS.addr}, {k.bothS.addr, noKey}} {
		t.Run(strings.Join(rcpts, ","), func(t *testing.T) {
			marker := k.marker(t)
			transcript, err := k.sendTo(t, k.bigSMTP, rcpts, withMarker(orig, marker))
			if err == nil {
				t.Fatalf("an 11 MB message was accepted; want 552 5.3.4\n%s", transcript)
			}
			if !strings.Contains(transcript, "552 5.3.4") || !strings.Contains(transcript, "too big once encrypted") {
				t.Errorf("reply is not danemilter's 552 5.3.4 ... too big once encrypted:\n%s", clip([]byte(transcript), 3000))
			}
			for _, d := range k.sink.rest(marker, 3*time.Second) {
				t.Errorf("refused message reached the sink for %v (%d bytes)", d.rcpts, len(d.data))
			}
		})
	}
}

// deliverLarge is deliverOne with the time it took logged.
func (k *keysEnv) deliverLarge(t *testing.T, addr string, orig []byte) []byte {
	t.Helper()
	start := time.Now()
	msg := k.deliverOne(t, addr, orig)
	t.Logf("%d bytes to %s: %d bytes delivered after %v", len(orig), addr, len(msg), time.Since(start).Round(time.Millisecond))
	return msg
}
