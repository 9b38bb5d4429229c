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
// context's deadline), a cancelled context or an oversized body also return
// EProviderUnavailable. The error's cause never holds a credential: URLs are
// reported without user info and query.
func (c Caller) Do(parent context.Context, req Request) (*Response, error) {
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
		return nil, c.unreachable(parent, ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return nil, c.unreachable(parent, ctx, err)
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
// safe reason.
// parent is the caller's context, ctx the one bounded by c.Timeout: when
// only ctx is done, it was this call's own timeout that fired.
func (c Caller) unreachable(parent, ctx context.Context, err error) error {
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

// CleanReason prepares a provider-supplied message for a user-facing error:
// it collapses whitespace, removes every occurrence of the given secrets,
// shortens it to a readable length and ends it with a full stop. Empty input
// gives "".
func CleanReason(msg string, secrets ...string) string {
	msg = strings.Join(strings.Fields(msg), " ")
	for _, s := range secrets {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	if msg == "" {
		return ""
	}
	if utf8.RuneCountInString(msg) > maxReason {
		msg = string([]rune(msg)[:maxReason]) + "…"
	}
	if last, _ := utf8.DecodeLastRuneInString(msg); !strings.ContainsRune(".!?…", last) {
		msg += "."
	}
	return msg
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
