package reply

import (
	"strings"
	"testing"
)

// all is every reply danemilter gives.
var all = map[string]Reply{
	"KeyBogus": KeyBogus(), "KeyLookupFailed": KeyLookupFailed(), "UnsignedDomain": UnsignedDomain(),
	"NoUsableKey": NoUsableKey(), "EncryptionNotPossible": EncryptionNotPossible(), "SomeRefused": SomeRefused(),
	"SendSeparately": SendSeparately(), "FormatsDiffer": FormatsDiffer(), "TooBig": TooBig(),
	"TooBigEncrypted": TooBigEncrypted(), "TempFailure": TempFailure(),
	"NotSignedBySender": NotSignedBySender(), "SenderKeyLookupFailed": SenderKeyLookupFailed(),
	"SenderKeyBogus": SenderKeyBogus(), "TooBigToVerify": TooBigToVerify(),
}

func TestReplies(t *testing.T) {
	for name, r := range all {
		if r.Temporary() == r.Permanent() {
			t.Errorf("%s: %d is neither or both temporary and permanent", name, r.Code)
		}
		// RFC 3463 §2: the enhanced code's class is the reply code's.
		if r.Enhanced == "" || r.Enhanced[0] != byte('0'+r.Code/100) || strings.Count(r.Enhanced, ".") != 2 {
			t.Errorf("%s: enhanced code %q does not go with %d", name, r.Enhanced, r.Code)
		}
		// Sendmail replaces a text with a '%' (MILTER_CHECK_REPLYCODE);
		// a line break would end the reply.
		if r.Text == "" || strings.ContainsAny(r.Text, "%\r\n") {
			t.Errorf("%s: text %q", name, r.Text)
		}
		if r.IsZero() {
			t.Errorf("%s is zero", name)
		}
	}
	if !(Reply{}).IsZero() {
		t.Error("zero Reply is not IsZero")
	}
}
