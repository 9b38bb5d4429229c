package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/mail"
	"strings"
	"sync"
	"time"
)

// Resend stands in for Resend's API: GET /domains with
// `Authorization: Bearer re_...`. Errors have Resend's shape
// {"statusCode", "message", "name"}.
//
// A missing key is answered 401 missing_api_key; a key without the "re_"
// prefix 400 validation_error ("API key is invalid", as the current API
// answers); a key containing "invalid" 403 invalid_api_key (as Resend's error
// reference lists it), and so is one containing "echo" (with Echo's
// message); a key containing "restricted" is a valid sending-only
// key: 401 restricted_api_key on every route but sending. "down",
// "ratelimit" and "slow" behave as the package describes.
//
// POST /emails sends a message as Resend's send contract describes it:
// a JSON body with from, to (an address or a list of at most 50), subject
// and html or text, answered 200 {"id"}. A missing field is 422
// missing_required_field, a from that is not an address 422
// invalid_from_address, more than 50 recipients or neither html nor text
// 422 validation_error, and a sender whose domain is not verified (every
// domain but SendingDomain and its subdomains) 403 validation_error. Sent
// messages are kept (Sent) so tests can read them.
//
// An Idempotency-Key header (at most 256 characters, else 400
// invalid_idempotency_key) makes a send happen once per key: the same key
// with the same message again is answered 200 with the first message's id
// and sends nothing, with another message 409 invalid_idempotent_request.
// FailSends makes the next sends fail as Resend does when it is failing or
// limiting.
type Resend struct {
	mux *http.ServeMux

	mu       sync.Mutex
	sent     []SentEmail
	failNext []int
	byKey    map[string]idempotentSend
}

// idempotentSend is what the stand-in remembers of a send with an
// idempotency key: the message's fingerprint and the id it was given.
type idempotentSend struct {
	fingerprint string
	id          string
}

// FailSends makes the next len(statuses) POST /emails answer, in order,
// these statuses with Resend's error body for them (429
// rate_limit_exceeded, 5xx internal_server_error, others
// validation_error) before any check, sending nothing; later ones are
// served again.
func (rs *Resend) FailSends(statuses ...int) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.failNext = append(rs.failNext, statuses...)
}

// nextFailure takes the next status FailSends queued, or 0.
func (rs *Resend) nextFailure() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if len(rs.failNext) == 0 {
		return 0
	}
	st := rs.failNext[0]
	rs.failNext = rs.failNext[1:]
	return st
}

// SendingDomain is the domain the stand-in treats as verified for sending.
const SendingDomain = "sandbox.example.com"

// SentEmail is a message the Resend stand-in accepted, with the key it was
// sent with.
type SentEmail struct {
	ID      string
	Key     string
	From    string
	To      []string
	Subject string
	Text    string
	HTML    string
	At      time.Time
}

// NewResend returns a Resend stand-in.
func NewResend() *Resend {
	r := &Resend{mux: http.NewServeMux()}
	r.mux.HandleFunc("GET /domains", r.domains)
	r.mux.HandleFunc("POST /emails", r.send)
	r.mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		resendError(w, http.StatusNotFound, "not_found", "The requested endpoint does not exist.")
	})
	return r
}

// ServeHTTP checks the key, then serves the routes.
func (rs *Resend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := apiKeyOf(r)
	if !holdIfSlow(r, key) {
		return
	}
	switch {
	case key == "":
		resendError(w, http.StatusUnauthorized, "missing_api_key", "Missing API key in the authorization header.")
	case has(key, "down"):
		resendError(w, http.StatusServiceUnavailable, "internal_server_error", "Service unavailable.")
	case has(key, "ratelimit"):
		resendError(w, http.StatusTooManyRequests, "rate_limit_exceeded",
			"Too many requests. You can only make 2 requests per second. See rate limit response headers for more information.")
	case !strings.HasPrefix(key, "re_"):
		resendError(w, http.StatusBadRequest, "validation_error", "API key is invalid")
	case has(key, "invalid"):
		resendError(w, http.StatusForbidden, "invalid_api_key", "API key is invalid")
	case has(key, "echo"):
		resendError(w, http.StatusForbidden, "invalid_api_key", Echo(key))
	case has(key, "restricted") && !(r.Method == http.MethodPost && r.URL.Path == "/emails"):
		resendError(w, http.StatusUnauthorized, "restricted_api_key", "This API key is restricted to only send emails")
	default:
		rs.mux.ServeHTTP(w, r)
	}
}

func (rs *Resend) domains(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"object":   "list",
		"has_more": false,
		"data": []map[string]any{{
			"id":         stableUUID("resend-domain", apiKeyOf(r)),
			"name":       "sandbox.example.com",
			"status":     "verified",
			"created_at": "2024-01-02 15:04:05.000000+00",
			"region":     "us-east-1",
		}},
	})
}

// resendError answers Resend's error shape.
func resendError(w http.ResponseWriter, status int, name, msg string) {
	writeJSON(w, status, map[string]any{"statusCode": status, "message": msg, "name": name})
}

// Sent returns the messages sent so far, oldest first.
func (rs *Resend) Sent() []SentEmail {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]SentEmail(nil), rs.sent...)
}

func (rs *Resend) send(w http.ResponseWriter, r *http.Request) {
	switch st := rs.nextFailure(); {
	case st == http.StatusTooManyRequests:
		resendError(w, st, "rate_limit_exceeded",
			"Too many requests. You can only make 2 requests per second. See rate limit response headers for more information.")
		return
	case st >= 500:
		resendError(w, st, "internal_server_error", "An unexpected error occurred.")
		return
	case st != 0:
		resendError(w, st, "validation_error", "The request was refused.")
		return
	}
	idemKey := r.Header.Get("Idempotency-Key")
	if len(idemKey) > 256 {
		resendError(w, http.StatusBadRequest, "invalid_idempotency_key", "The idempotency key must be between 1-256 characters.")
		return
	}
	var body struct {
		From    string          `json:"from"`
		To      json.RawMessage `json:"to"`
		Subject string          `json:"subject"`
		Text    string          `json:"text"`
		HTML    string          `json:"html"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil {
		resendError(w, http.StatusUnprocessableEntity, "validation_error", "Invalid JSON body.")
		return
	}
	var to []string
	if len(body.To) > 0 {
		var one string
		if json.Unmarshal(body.To, &one) == nil {
			to = []string{one}
		} else if json.Unmarshal(body.To, &to) != nil {
			resendError(w, http.StatusUnprocessableEntity, "validation_error", "The `to` field must be a string or an array of strings.")
			return
		}
	}
	for _, f := range []struct{ name, value string }{{"from", body.From}, {"subject", body.Subject}} {
		if strings.TrimSpace(f.value) == "" {
			resendError(w, http.StatusUnprocessableEntity, "missing_required_field", fmt.Sprintf("Missing `%s` field.", f.name))
			return
		}
	}
	if len(to) == 0 {
		resendError(w, http.StatusUnprocessableEntity, "missing_required_field", "Missing `to` field.")
		return
	}
	if len(to) > 50 {
		resendError(w, http.StatusUnprocessableEntity, "validation_error", "Too many recipients: at most 50.")
		return
	}
	for _, a := range to {
		if _, err := mail.ParseAddress(a); err != nil {
			resendError(w, http.StatusUnprocessableEntity, "validation_error", "Invalid `to` field.")
			return
		}
	}
	if body.Text == "" && body.HTML == "" {
		resendError(w, http.StatusUnprocessableEntity, "validation_error", "Missing `html` or `text` field.")
		return
	}
	from, err := mail.ParseAddress(body.From)
	if err != nil {
		resendError(w, http.StatusUnprocessableEntity, "invalid_from_address",
			"Invalid `from` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format.")
		return
	}
	domain := strings.ToLower(from.Address[strings.LastIndexByte(from.Address, '@')+1:])
	if domain != SendingDomain && !strings.HasSuffix(domain, "."+SendingDomain) {
		resendError(w, http.StatusForbidden, "validation_error",
			fmt.Sprintf("The %s domain is not verified. Please, add and verify your domain.", domain))
		return
	}
	m := SentEmail{ID: newUUID(), Key: apiKeyOf(r), From: body.From, To: to, Subject: body.Subject, Text: body.Text,
		HTML: body.HTML, At: time.Now()}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if idemKey != "" {
		// Keys are per account: the API key stands for it here.
		k := m.Key + "\x00" + idemKey
		fp, _ := json.Marshal([]any{m.From, m.To, m.Subject, m.Text, m.HTML})
		if prev, ok := rs.byKey[k]; ok {
			if prev.fingerprint != string(fp) {
				resendError(w, http.StatusConflict, "invalid_idempotent_request",
					"Same idempotency key used with a different request payload. Change your idempotency key or payload.")
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"id": prev.id})
			return
		}
		if rs.byKey == nil {
			rs.byKey = map[string]idempotentSend{}
		}
		rs.byKey[k] = idempotentSend{fingerprint: string(fp), id: m.ID}
	}
	rs.sent = append(rs.sent, m)
	writeJSON(w, http.StatusOK, map[string]any{"id": m.ID})
}
