package milter

import (
	"strings"

	"github.com/danemilter/danemilter/verify"
)

// The verify package's report methods, reached through this file alone
// while they are being written (verify/report.go states the contract).

func reportPass(r *verify.Report) bool {
	if p, ok := any(r).(interface{ Pass() bool }); ok {
		return p.Pass()
	}
	for _, s := range r.Signatures {
		if s.Result == verify.ResultPass {
			return true
		}
	}
	return false
}

func reportSummary(r *verify.Report) string {
	if p, ok := any(r).(interface{ Summary() string }); ok {
		return p.Summary()
	}
	var parts []string
	for _, s := range r.Signatures {
		parts = append(parts, string(s.Method)+"="+string(s.Result)+"("+string(s.Binding)+")")
	}
	if len(parts) == 0 {
		return "unsigned"
	}
	return strings.Join(parts, " ")
}

func reportFields(r *verify.Report, authservID string) []verify.Field {
	if p, ok := any(r).(interface {
		Fields(string) []verify.Field
	}); ok {
		return p.Fields(authservID)
	}
	return nil
}

// isOurs reports whether an Authentication-Results value names authservID
// (RFC 8601 §2.2: the authserv-id comes first, before any ';'); case is
// ignored, as for the domain names authserv-ids usually are.
func isOurs(value, authservID string) bool {
	v := strings.TrimLeft(value, " \t\r\n")
	for strings.HasPrefix(v, "(") { // a comment (CFWS) before the authserv-id
		i := strings.IndexByte(v, ')')
		if i < 0 {
			return false
		}
		v = strings.TrimLeft(v[i+1:], " \t\r\n")
	}
	id := v
	if i := strings.IndexAny(v, "; \t\r\n("); i >= 0 {
		id = v[:i]
	}
	id = strings.Trim(id, "\"")
	return id != "" && strings.EqualFold(id, authservID)
}
