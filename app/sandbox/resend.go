package sandbox

import (
	"net/http"
	"strings"
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
// key: 401 restricted_api_key. "down", "ratelimit" and "slow" behave as the
// package describes.
type Resend struct {
	mux *http.ServeMux
}

// NewResend returns a Resend stand-in.
func NewResend() *Resend {
	r := &Resend{mux: http.NewServeMux()}
	r.mux.HandleFunc("GET /domains", r.domains)
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
	case has(key, "restricted"):
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
