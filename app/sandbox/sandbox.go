// Package sandbox holds local stand-ins for the provider APIs BYOC calls
// (Vapi in both regions, Twilio, Resend, ElevenLabs). Each stand-in is a plain
// http.Handler that speaks the provider's real contract, including its error
// answers, so the provider clients can be tested with httptest.NewServer and
// a demo can run without any real account.
//
// What a stand-in does is chosen by the credential it receives, so a test or
// a person at the dashboard can trigger every case. A credential containing
// (case-insensitively):
//
//   - "down" is answered 503;
//   - "ratelimit" is answered 429;
//   - "slow" is answered only after SlowDelay, or never if the caller gives
//     up first (the handler returns as soon as the request is cancelled), and
//     otherwise handled like the rest of the credential says;
//   - "invalid" is refused with the provider's real 401/403 answer;
//   - "restricted" is a valid key of limited scope (Resend sending-only key,
//     ElevenLabs key without User: Read);
//   - "echo" is refused with an error message that repeats the credential
//     the ways a careless or hostile API might: upper-cased, cut short,
//     base64- and hex-encoded (see Echo).
//
// Anything else well-formed is valid. The provider-specific rules are on each
// stand-in's type.
package sandbox

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"byoc/app"
)

// SlowDelay is how long a stand-in holds a request whose credential contains
// "slow": longer than any sensible provider timeout.
const SlowDelay = 30 * time.Second

// Path prefixes under which Handler mounts each stand-in.
const (
	PrefixVapi       = "/vapi"
	PrefixVapiEU     = "/vapi-eu"
	PrefixTwilio     = "/twilio"
	PrefixResend     = "/resend"
	PrefixElevenLabs = "/elevenlabs"
)

// Sandbox is one stand-in per provider API, each keeping its own state
// (Vapi assistants, sent Twilio messages) for as long as the Sandbox lives.
type Sandbox struct {
	Vapi       *Vapi // US region
	VapiEU     *Vapi // EU region: its keys are distinct from US keys
	Twilio     *Twilio
	Resend     *Resend
	ElevenLabs *ElevenLabs
}

// New returns a Sandbox with fresh, empty stand-ins.
func New() *Sandbox {
	return &Sandbox{
		Vapi:       NewVapi(app.VapiUS),
		VapiEU:     NewVapi(app.VapiEU),
		Twilio:     NewTwilio(),
		Resend:     NewResend(),
		ElevenLabs: NewElevenLabs(),
	}
}

// Handler serves every stand-in on one listener, each under its Prefix*
// path (for example the Vapi US API at /vapi/assistant).
func (s *Sandbox) Handler() http.Handler {
	mux := http.NewServeMux()
	mount := func(prefix string, h http.Handler) {
		mux.Handle(prefix+"/", http.StripPrefix(prefix, h))
	}
	mount(PrefixVapi, s.Vapi)
	mount(PrefixVapiEU, s.VapiEU)
	mount(PrefixTwilio, s.Twilio)
	mount(PrefixResend, s.Resend)
	mount(PrefixElevenLabs, s.ElevenLabs)
	return mux
}

// URLs are the base URLs of every provider API, as the clients take them.
type URLs struct {
	Vapi, VapiEU, Twilio, Resend, ElevenLabs string
}

// BaseURLs returns the base URL of each stand-in when Handler is served at
// root (such as "http://127.0.0.1:3001", with or without a trailing slash).
func (s *Sandbox) BaseURLs(root string) URLs {
	root = strings.TrimRight(root, "/")
	return URLs{
		Vapi:       root + PrefixVapi,
		VapiEU:     root + PrefixVapiEU,
		Twilio:     root + PrefixTwilio,
		Resend:     root + PrefixResend,
		ElevenLabs: root + PrefixElevenLabs,
	}
}

// has reports whether credential contains marker, ignoring case.
func has(credential, marker string) bool {
	return strings.Contains(strings.ToLower(credential), marker)
}

// holdIfSlow waits SlowDelay when credential asks for it. It returns false
// when the request was cancelled meanwhile: the handler then answers nothing.
func holdIfSlow(r *http.Request, credential string) bool {
	if !has(credential, "slow") {
		return true
	}
	// net/http notices a client that went away (and cancels the request's
	// context) only once the request body has been read to its end.
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(bytes.NewReader(body))
	t := time.NewTimer(SlowDelay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// Echo is the message with which a stand-in refuses a credential
// containing "echo": it repeats the credential upper-cased, its first ten
// characters, and its base64 and hex encodings, never the credential as it
// was sent.
func Echo(credential string) string {
	r := []rune(credential)
	return fmt.Sprintf("Key %s is not valid (received %s, which starts %s; hex %s)",
		strings.ToUpper(credential), base64.StdEncoding.EncodeToString([]byte(credential)),
		string(r[:min(len(r), 10)]), hex.EncodeToString([]byte(credential)))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// newUUID returns a random version-4 UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return formatUUID(b)
}

// stableUUID returns a UUID derived from parts, the same on every call.
func stableUUID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	var b [16]byte
	copy(b[:], sum[:])
	return formatUUID(b)
}

func formatUUID(b [16]byte) string {
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}

// randomHex returns n random bytes as lowercase hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
