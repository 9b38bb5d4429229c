package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// Headers Vapi authenticates its webhooks with. Header lookups are
// case-insensitive in every HTTP server, so the spelling does not matter.
const (
	HeaderVapiSecret    = "X-Vapi-Secret"
	HeaderAuthorization = "Authorization"
	HeaderSignature     = "X-Signature"
	HeaderVapiSignature = "X-Vapi-Signature"
	HeaderTimestamp     = "X-Timestamp"
	HeaderVapiTimestamp = "X-Vapi-Timestamp"
)

// DefaultTolerance is how far an HMAC timestamp may be from the time the
// webhook was received, in either direction.
const DefaultTolerance = 300 * time.Second

const (
	signaturePrefix    = "sha256="
	bearerPrefix       = "bearer "
	msThreshold        = 1e11 // a timestamp above this counts milliseconds, not seconds
	maxTimestampDigits = 19
	hexSignatureLen    = 2 * sha256.Size

	authModeSecretHeader = "x-vapi-secret"
	authModeBearer       = "bearer"
	authModeHMAC         = "hmac"
)

// Why a verification failed, for the debug log. None of them says anything
// about the secret.
const (
	failNoSecret          = "no secret configured"
	failHeaderMissing     = "header missing"
	failSecretMismatch    = "secret mismatch"
	failNotBearer         = "authorization is not a bearer credential"
	failTimestampMissing  = "timestamp header missing"
	failTimestampInvalid  = "timestamp malformed"
	failTimestampSkew     = "timestamp skew"
	failSignatureMismatch = "signature mismatch"
	failSignatureMalform  = "signature malformed"
	failStaticRefused     = "static secret refused: the org takes HMAC signatures only"
)

// secretKey is a webhook secret ready for constant-time comparison: its
// SHA-256 digest is computed once, when the secret is cached, so comparing
// digests of equal length never reveals the secret's length.
type secretKey struct {
	value  string
	digest [sha256.Size]byte
}

func newSecretKey(v string) secretKey {
	return secretKey{value: v, digest: sha256.Sum256([]byte(v))}
}

// verdict is the outcome of checking a delivery's credentials.
type verdict struct {
	ok   bool
	mode string // which check passed
	// stale is set when the HMAC signature was right but its timestamp was
	// outside the tolerance: a replay, or a badly wrong clock.
	stale bool
	// failure says which check failed (the last one tried), for the debug log.
	failure string
	// signature is the decoded HMAC signature of a delivery that passed in
	// HMAC mode, for replay detection.
	signature []byte
}

// verify checks a delivery against key: any one of the X-Vapi-Secret
// header, an Authorization bearer credential, or an HMAC-SHA256 signature
// of "{timestamp}.{body}" (hex, optional "sha256=" prefix) with a timestamp
// (seconds, or milliseconds when above 1e11) at most tolerance away from now
// authenticates it; with hmacOnly only the signature does (the static
// credentials bind neither the body nor the time, so a copy of one could be
// replayed with any body for ever). An empty key refuses everything.
// Comparisons are constant-time.
func verify(header func(string) string, body []byte, key secretKey, hmacOnly bool, now time.Time, tolerance time.Duration) verdict {
	if key.value == "" {
		return verdict{failure: failNoSecret}
	}
	if header == nil {
		return verdict{failure: failHeaderMissing}
	}
	v := verdict{failure: failHeaderMissing}
	if hmacOnly {
		if header(HeaderVapiSecret) != "" || header(HeaderAuthorization) != "" {
			v.failure = failStaticRefused
		}
		return verifySignature(header, body, key, now, tolerance, v)
	}
	if s := header(HeaderVapiSecret); s != "" {
		if key.matches(s) {
			return verdict{ok: true, mode: authModeSecretHeader}
		}
		v.failure = failSecretMismatch
	}
	if a := header(HeaderAuthorization); a != "" {
		if len(a) > len(bearerPrefix) && strings.EqualFold(a[:len(bearerPrefix)], bearerPrefix) {
			if key.matches(strings.TrimSpace(a[len(bearerPrefix):])) {
				return verdict{ok: true, mode: authModeBearer}
			}
			v.failure = failSecretMismatch
		} else if v.failure == failHeaderMissing {
			v.failure = failNotBearer
		}
	}
	return verifySignature(header, body, key, now, tolerance, v)
}

// verifySignature checks the delivery's HMAC signature headers; without
// any it returns v, the verdict of the checks before.
func verifySignature(header func(string) string, body []byte, key secretKey, now time.Time, tolerance time.Duration,
	v verdict) verdict {
	sig := header(HeaderSignature)
	if sig == "" {
		sig = header(HeaderVapiSignature)
	}
	if sig == "" {
		return v
	}
	ts := header(HeaderTimestamp)
	if ts == "" {
		ts = header(HeaderVapiTimestamp)
	}
	return verifyHMAC(sig, ts, body, key.value, now, tolerance)
}

// matches compares a presented secret with the key in constant time.
func (k secretKey) matches(presented string) bool {
	d := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(d[:], k.digest[:]) == 1
}

// verifyHMAC checks an HMAC signature header and its timestamp header.
func verifyHMAC(sig, ts string, body []byte, secret string, now time.Time, tolerance time.Duration) verdict {
	if ts == "" {
		return verdict{failure: failTimestampMissing}
	}
	got, ok := decodeSignature(sig)
	if !ok {
		return verdict{failure: failSignatureMalform}
	}
	want := sign(secret, ts, body)
	if !hmac.Equal(got, want[:]) {
		return verdict{failure: failSignatureMismatch}
	}
	at, ok := parseTimestamp(ts)
	if !ok {
		return verdict{failure: failTimestampInvalid}
	}
	if skew := now.Sub(at); skew > tolerance || skew < -tolerance {
		return verdict{stale: true, failure: failTimestampSkew}
	}
	return verdict{ok: true, mode: authModeHMAC, signature: got}
}

// decodeSignature reads a hex HMAC-SHA256 signature, with or without the
// "sha256=" prefix (any case). Anything but exactly 32 bytes of hex fails.
func decodeSignature(s string) ([]byte, bool) {
	s = strings.TrimSpace(s)
	if len(s) >= len(signaturePrefix) && strings.EqualFold(s[:len(signaturePrefix)], signaturePrefix) {
		s = s[len(signaturePrefix):]
	}
	if len(s) != hexSignatureLen {
		return nil, false
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, false
	}
	return b, true
}

// sign returns the HMAC-SHA256 of "{ts}.{body}" keyed by secret.
func sign(secret, ts string, body []byte) [sha256.Size]byte {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	var out [sha256.Size]byte
	mac.Sum(out[:0])
	return out
}

// parseTimestamp reads a Unix timestamp in seconds, or in milliseconds when
// the number is above 1e11 (year 5138 in seconds, 1973 in milliseconds).
// Only plain decimal digits are accepted.
func parseTimestamp(ts string) (time.Time, bool) {
	ts = strings.TrimSpace(ts)
	if ts == "" || len(ts) > maxTimestampDigits {
		return time.Time{}, false
	}
	for i := 0; i < len(ts); i++ {
		if ts[i] < '0' || ts[i] > '9' {
			return time.Time{}, false
		}
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	if n > msThreshold {
		return time.UnixMilli(n), true
	}
	return time.Unix(n, 0), true
}
