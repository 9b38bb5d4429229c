// Package providers holds what every provider client shares: Caller, which sends one bounded HTTP
// request to a provider and turns transport failures, timeouts, rate limits
// and 5xx answers into app errors that never carry a secret.
//
// The clients themselves live in the subpackages vapi, twilio, resend and
// elevenlabs; each speaks plain net/http against a base URL given at
// construction, so tests and the sandbox can point it at a local stand-in.
package providers

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"byoc/app"
)

// DefaultTimeout bounds each provider call when a client is built without a
// positive timeout.
const DefaultTimeout = 10 * time.Second

// MaxBody is the most of a response body a Caller reads. A longer answer is
// refused as EProviderUnavailable instead of being read into memory.
const MaxBody = 4 << 20

// Request is one outgoing provider request. URL must not contain a
// credential: credentials go into Header only.
type Request struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
}

// Response is a provider's answer with its body already read (at most
// MaxBody bytes) and closed.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// Status is the status code with its standard text, like "401 Unauthorized",
// for user-facing messages (the provider's own reason phrase is not used).
func (r *Response) Status() string {
	return fmt.Sprintf("%d %s", r.StatusCode, http.StatusText(r.StatusCode))
}

// Caller sends requests to one provider. Name is the provider's display name
// used in error messages ("Twilio"); every call is bounded by Timeout on top
// of the caller's context. A Caller is safe for concurrent use.
type Caller struct {
	Name    string
	HTTP    *http.Client
	Timeout time.Duration
}

// NewCaller returns a Caller for the provider called name. A nil client means
// a plain &http.Client{}; a non-positive timeout means DefaultTimeout.
//
// The Caller uses a copy of hc (sharing its Transport) that does not follow
// redirects: provider APIs do not redirect, and following one would carry
// credential headers such as xi-api-key to another host. A 3xx answer is
// therefore returned like any other answer.
func NewCaller(name string, hc *http.Client, timeout time.Duration) Caller {
	own := &http.Client{}
	if hc != nil {
		*own = *hc
	}
	own.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return Caller{Name: name, HTTP: own, Timeout: timeout}
}

// Do sends req and reads the answer. Whatever the status, a received answer
// is returned without error, except 429 and 5xx, which return
// EProviderUnavailable. A network failure, a timeout (Timeout or the
// context's deadline, when it left the provider its whole Timeout), a
// context cancelled during the call or an oversized body also return
// EProviderUnavailable. The caller's own time running out is EUnavailable:
// a context that ended before the call (nothing is sent), or whose
// deadline, shorter than Timeout, passed during it. A context cancelled
// with an *app.Error as its cause (context.WithCancelCause: the caller's
// user cancelled, the server is restarting), before or during the call,
// returns that error's code and message: the provider is not to blame.
// The error's cause never holds a credential: URLs are reported without
// user info and query.
func (c Caller) Do(parent context.Context, req Request) (*Response, error) {
	if err := parent.Err(); err != nil {
		// The caller's time was up (or it gave up) before the call:
		// nothing is sent, and the provider is not to blame.
		var own *app.Error
		if errors.As(context.Cause(parent), &own) {
			return nil, &app.Error{Code: own.Code, Message: own.Message, Cause: err}
		}
		msg := "The server could not finish the request in time. Please try again."
		if errors.Is(err, context.Canceled) {
			msg = "The request was cancelled before it could finish. Please try again."
		}
		return nil, &app.Error{Code: app.EUnavailable, Message: msg, Cause: err}
	}
	// Whether the caller leaves the provider less than its whole Timeout:
	// then a call its deadline cuts short is the caller's time running
	// out, not the provider's fault.
	d, ok := parent.Deadline()
	callerBound := ok && time.Until(d) < c.Timeout
	ctx, cancel := context.WithTimeout(parent, c.Timeout)
	defer cancel()

	var body io.Reader
	if req.Body != nil {
		body = bytes.NewReader(req.Body)
	}
	hreq, err := http.NewRequestWithContext(ctx, req.Method, req.URL, body)
	if err != nil {
		return nil, app.Internal(fmt.Errorf("%s request: %w", c.Name, ScrubURLError(err)))
	}
	for k, vs := range req.Header {
		hreq.Header[k] = vs
	}
	hreq.Header.Set("Accept", "application/json")

	resp, err := c.HTTP.Do(hreq)
	if err != nil {
		return nil, c.unreachable(parent, ctx, callerBound, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return nil, c.unreachable(parent, ctx, callerBound, err)
	}
	if len(data) > MaxBody {
		return nil, &app.Error{
			Code:    app.EProviderUnavailable,
			Message: fmt.Sprintf("%s sent a larger answer than expected. Try again.", c.Name),
			Cause:   fmt.Errorf("%s %s: body over %d bytes", req.Method, redactURL(req.URL), MaxBody),
		}
	}
	r := &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: data}
	switch {
	case r.StatusCode == http.StatusTooManyRequests:
		return nil, &app.Error{
			Code:    app.EProviderUnavailable,
			Message: fmt.Sprintf("%s is limiting requests right now (%s). Try again in a minute.", c.Name, r.Status()),
		}
	case r.StatusCode >= 500:
		return nil, &app.Error{
			Code:    app.EProviderUnavailable,
			Message: fmt.Sprintf("%s is not available right now (%s). Try again.", c.Name, r.Status()),
		}
	}
	return r, nil
}

// unreachable turns a transport error into EProviderUnavailable with a short,
// safe reason, or into EUnavailable when the caller's deadline (callerBound:
// shorter than c.Timeout) ended the call.
// parent is the caller's context, ctx the one bounded by c.Timeout: when
// only ctx is done, it was this call's own timeout that fired.
func (c Caller) unreachable(parent, ctx context.Context, callerBound bool, err error) error {
	var own *app.Error
	if parent.Err() != nil && errors.As(context.Cause(parent), &own) {
		// The caller stopped the call for a reason of its own (its user
		// cancelled, the server is restarting): not the provider's fault.
		return &app.Error{Code: own.Code, Message: own.Message,
			Cause: fmt.Errorf("%s: the caller stopped the call: %w", c.Name, ScrubURLError(err))}
	}
	if callerBound && errors.Is(parent.Err(), context.DeadlineExceeded) {
		return &app.Error{Code: app.EUnavailable, Message: "The server could not finish the request in time. Please try again.",
			Cause: fmt.Errorf("%s: the caller's deadline passed during the call: %w", c.Name, ScrubURLError(err))}
	}
	reason := TransportReason(err)
	switch {
	case errors.Is(parent.Err(), context.Canceled):
		reason = "request cancelled"
	case parent.Err() != nil:
		reason = "timed out"
	case ctx.Err() != nil:
		reason = "timed out after " + c.Timeout.String()
	}
	return &app.Error{
		Code:    app.EProviderUnavailable,
		Message: fmt.Sprintf("%s could not be reached (%s). Try again.", c.Name, reason),
		Cause:   ScrubURLError(err),
	}
}

// TransportReason names the transport failure err in a few safe words
// ("timed out", "connection refused", "host not found", "connection
// dropped", "request cancelled"), or "network error" for any other.
func TransportReason(err error) string {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "request cancelled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timed out"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &dnsErr):
		return "host not found"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection dropped"
	}
	return "network error"
}

// Unexpected returns the EProviderUnavailable error for an answer a client
// does not know how to read (an unplanned status or body).
func (c Caller) Unexpected(r *Response) error {
	return &app.Error{
		Code:    app.EProviderUnavailable,
		Message: fmt.Sprintf("%s gave an unexpected answer (%s). Try again later.", c.Name, r.Status()),
	}
}

// DecodeJSON decodes a successful answer's body into v, or returns
// EProviderUnavailable when the body is not the JSON the client expects.
func (c Caller) DecodeJSON(r *Response, v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return &app.Error{
			Code:    app.EProviderUnavailable,
			Message: fmt.Sprintf("%s gave an answer that could not be read (%s). Try again later.", c.Name, r.Status()),
			Cause:   err,
		}
	}
	return nil
}

// BasicAuth returns the value of an Authorization header for HTTP Basic
// authentication.
func BasicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// JoinURL appends path (which starts with "/") to base, ignoring a trailing
// slash on base.
func JoinURL(base, path string) string {
	return strings.TrimRight(base, "/") + path
}

// maxReason is the most runes of a provider-supplied message shown to a user.
const maxReason = 200

// maxScanned is the most runes of a provider-supplied message CleanReason
// reads, after collapsing whitespace; the rest is dropped unread. Redaction
// lengthens a text at most 2.5 times (4 characters become "[redacted]"), so
// everything it keeps within maxReason has been examined. maxScannedBytes
// bounds the raw text read before that.
const (
	maxScanned      = 4 * maxReason
	maxScannedBytes = 64 << 10
)

// minShared is the length, in characters, of the shortest run a message may
// not share with a field of the config, in any case (or with the field's
// base64 or hex encoding). Shorter fields count only as a whole.
const minShared = 8

// minToken is the length of the shortest run of token characters (letters,
// digits, + / = _ -) that counts as a token by its shape alone.
const minToken = 16

// redacted replaces whatever CleanReason removes.
const redacted = "[redacted]"

// CleanReason prepares a provider-supplied message for a user-facing error,
// the audit log and the server log. It collapses whitespace and then removes
// what may carry a credential, even transformed: every run of at least 8
// characters that the message shares, in any case, with a field of cfg or
// with one of extra (or with their base64 or hex encodings), and every
// token-like run of at least 16 letters, digits and + / = _ - that holds a
// digit or is mostly capitals (keys, hashes, encoded blobs). Each removed
// span becomes "[redacted]". It then shortens the text to a readable length
// and ends it with a full stop. Empty input gives "". cfg may be nil.
//
// Callers still prefer a reason of their own ("the key is not valid") over
// the provider's text where one fits: this is for the text a user needs,
// such as what a validation error refused.
func CleanReason(msg string, cfg app.Config, extra ...string) string {
	cut := len(msg) > maxScannedBytes
	if cut {
		msg = msg[:maxScannedBytes]
	}
	text := []rune(strings.Join(strings.Fields(msg), " "))
	if len(text) > maxScanned {
		text, cut = text[:maxScanned], true
	}
	if cut {
		// What was cut off may have been the rest of a token.
		for len(text) > 0 && isTokenRune(text[len(text)-1]) {
			text = text[:len(text)-1]
		}
		if n := len(text); n > 0 && text[n-1] == ' ' {
			text = text[:n-1]
		}
	}
	if len(text) == 0 {
		return ""
	}
	hide := make([]bool, len(text))
	markTokens(text, hide)
	markShared(text, hide, append(configValues(cfg), extra...))
	var b strings.Builder
	for i, r := range text {
		switch {
		case !hide[i]:
			b.WriteRune(r)
		case i == 0 || !hide[i-1]:
			b.WriteString(redacted)
		}
	}
	out := []rune(b.String())
	if len(out) > maxReason {
		return string(out[:maxReason]) + "…"
	}
	msg = string(out)
	if last, _ := utf8.DecodeLastRuneInString(msg); !strings.ContainsRune(".!?…", last) {
		msg += "."
	}
	return msg
}

// configValues returns the value of every field of cfg (nil for no config).
func configValues(cfg app.Config) []string {
	cfg, err := app.ConfigValue(cfg)
	if err != nil {
		return nil
	}
	spec, err := app.Describe(cfg.Provider())
	if err != nil {
		return nil
	}
	var out []string
	for _, v := range spec.Values(cfg) {
		out = append(out, v)
	}
	return out
}

// isTokenRune reports whether r may be part of a key, a hash or an encoded
// blob: an ASCII letter or digit, or one of + / = _ -.
func isTokenRune(r rune) bool {
	return r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("+/=_-", r))
}

// markTokens marks every token-like run of text in hide: at least minToken
// token characters holding a digit, or letters that are at least a third
// capitals. Long lower-case words and camelCase names stay.
func markTokens(text []rune, hide []bool) {
	for i := 0; i < len(text); {
		if !isTokenRune(text[i]) {
			i++
			continue
		}
		j, digits, letters, upper := i, 0, 0, 0
		for ; j < len(text) && isTokenRune(text[j]); j++ {
			switch r := text[j]; {
			case unicode.IsDigit(r):
				digits++
			case unicode.IsUpper(r):
				upper++
				letters++
			case unicode.IsLetter(r):
				letters++
			}
		}
		if j-i >= minToken && (digits > 0 || letters > 0 && 3*upper >= letters) {
			for k := i; k < j; k++ {
				hide[k] = true
			}
		}
		i = j
	}
}

// markShared marks in hide every run of text of at least minShared
// characters that one of values, or its base64 or hex encoding, also holds,
// ignoring case; a value shorter than that (from 4 characters) counts only
// as a whole.
func markShared(text []rune, hide []bool, values []string) {
	// windows[n] holds the case-folded runs of n characters to look for.
	windows := map[int]map[string]bool{}
	add := func(form []rune, n int) {
		if windows[n] == nil {
			windows[n] = map[string]bool{}
		}
		for i := 0; i+n <= len(form); i++ {
			windows[n][string(form[i:i+n])] = true
		}
	}
	for _, v := range values {
		if r := fold(v); len(r) >= 4 {
			add(r, min(minShared, len(r)))
		}
		for _, form := range encodings(v) {
			if r := fold(form); len(r) >= minShared {
				add(r, minShared)
			}
		}
	}
	folded := fold(string(text))
	for n, set := range windows {
		for i := 0; i+n <= len(folded); i++ {
			if set[string(folded[i:i+n])] {
				for k := i; k < i+n; k++ {
					hide[k] = true
				}
			}
		}
	}
}

// fold returns the characters of s in lower case, one for one.
func fold(s string) []rune {
	r := []rune(s)
	for i := range r {
		r[i] = unicode.ToLower(r[i])
	}
	return r
}

// encodings returns the forms a provider may echo v in besides v itself:
// hex, and base64 (standard and URL alphabets) at each of the three byte
// alignments v can have inside a longer encoded text (as in a Basic
// authorization header), keeping only the characters that depend on v alone.
func encodings(v string) []string {
	if v == "" {
		return nil
	}
	out := []string{hex.EncodeToString([]byte(v))}
	for offset := range 3 {
		padded := append(make([]byte, offset), v...)
		whole := len(padded) / 3 // groups of three bytes that end inside v
		from := 0
		if offset > 0 {
			from = 1 // the first group mixes in bytes before v
		}
		if whole <= from {
			continue
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			out = append(out, enc.EncodeToString(padded)[4*from:4*whole])
		}
	}
	return out
}

// ScrubURLError rewrites a *url.Error (which quotes the request URL) so that
// its URL carries neither user info nor query, keeping the wrapped error for
// errors.Is. Other errors are returned as they are.
func ScrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, redactURL(ue.URL), ue.Err)
	}
	return err
}

// redactURL drops user info, query and fragment from raw.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}
