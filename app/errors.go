// Package app holds BYOC's domain: the providers, the typed credential
// configs, the principal acting on a request, secrets and the one error type
// every layer speaks. It imports nothing of the project; everything else
// imports it.
package app

import (
	"errors"
	"fmt"
)

// Error codes: the one catalogue of every code an answer can carry. The
// services return them; the web layer adds EMethodNotAllowed, and the
// webhook handler answers EInvalidSignature and EUnknownAssistant. Each
// code has exactly one HTTP status, given here.
const (
	EInternal            = "internal"             // 500: a bug or an unavailable dependency; the cause is logged, never shown
	EValidation          = "validation_failed"    // 400: bad input, with per-field messages
	EUnauthorized        = "unauthorized"         // 401: not signed in, or the token is not acceptable
	EInvalidCredentials  = "invalid_credentials"  // 401: wrong email or password
	EInvalidSignature    = "invalid_signature"    // 401: a webhook not authenticated with its org's secret (whichever check failed)
	EForbidden           = "forbidden"            // 403: signed in, but not allowed (also a failed CSRF check)
	ENotFound            = "not_found"            // 404: no such thing (for this org)
	ENotConfigured       = "not_configured"       // 404: the org has no credentials stored for the provider
	EUnknownProvider     = "unknown_provider"     // 404: the provider name is not one of the five
	EUnknownAssistant    = "unknown_assistant"    // 404: a webhook names an assistant no org has
	EMethodNotAllowed    = "method_not_allowed"   // 405: the address does not accept the request's method
	EConflict            = "conflict"             // 409: the write conflicts with existing state
	EEmailTaken          = "email_taken"          // 409: signup with an email that already has an account
	ELastAdmin           = "last_admin"           // 409: the change would leave the org without an admin
	EPayloadTooLarge     = "payload_too_large"    // 413
	EVerificationFailed  = "verification_failed"  // 422: the provider refused the credentials
	ERateLimited         = "rate_limited"         // 429
	EProviderUnavailable = "provider_unavailable" // 502: the provider could not be reached or timed out
	EUnavailable         = "unavailable"          // 503: this server cannot serve the request right now
)

// Error is the domain error. Code is one of the E* constants, Message is safe
// to show to the user, and Fields holds per-field messages for validation
// errors. Cause is for the log only and never reaches a response.
type Error struct {
	Code    string
	Message string
	Fields  map[string]string
	// Reason, when set, is a finer and stable reason within Code that is
	// kept as data, such as ReasonReconnect next to a stored verification
	// error.
	Reason string
	Cause  error
}

// ErrUndecryptable is in the chain of the error returned for stored
// credentials that exist but cannot be opened (their key is no longer
// configured, they were altered, or they belong to another org or
// provider); errors.Is finds it. Such credentials are unusable, never
// "absent": whatever they protect fails closed.
var ErrUndecryptable = errors.New("stored credentials cannot be decrypted")

// ReasonReconnect says that the provider no longer accepts the stored
// authorization and the account must be connected again (a refused OAuth
// refresh), as opposed to a check that may pass when repeated.
const ReasonReconnect = "reconnect_needed"

// ErrorReason returns the Reason of err if it is (or wraps) an *Error, else "".
func ErrorReason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Cause)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the cause, so errors.Is and errors.As see through an Error.
func (e *Error) Unwrap() error { return e.Cause }

// Errorf returns an Error with the given code and a formatted user-facing message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Internal wraps an unexpected failure. Its message is generic; the cause is
// kept for the log.
func Internal(cause error) *Error {
	return &Error{Code: EInternal, Message: "Something went wrong on our side. Please try again.", Cause: cause}
}

// AsError returns err as a domain error: the *Error in err's chain (the
// first one, as errors.As finds it) unchanged, and Internal(err) for any
// other non-nil error, so its cause is kept for the log. It returns nil for
// nil; as a nil *Error is a non-nil error, callers that return the result
// as an error call it only when err is not nil.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Internal(err)
}

// ValidationError returns an EValidation error carrying per-field messages.
// It returns nil when fields is empty, so callers can write
// `if err := app.ValidationError(f); err != nil`.
func ValidationError(fields map[string]string) error {
	if len(fields) == 0 {
		return nil
	}
	return &Error{Code: EValidation, Message: "Please correct the highlighted fields.", Fields: fields}
}

// ErrorCode returns the code of err if it is (or wraps) an *Error, and
// EInternal for every other non-nil error. It returns "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the user-facing message of err: the Message of an
// *Error, and a generic message for anything else, so raw error text never
// reaches a user.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != EInternal {
		return e.Message
	}
	return Internal(nil).Message
}

// ErrorFields returns the per-field messages of err, or nil.
func ErrorFields(err error) map[string]string {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}

// ErrorEnvelope is the JSON body of every failed API answer:
// {"success": false, "error": {"code", "message", "fields"}}. The web layer
// and the webhook handler both answer with it.
type ErrorEnvelope struct {
	Success bool      `json:"success"`
	Error   ErrorBody `json:"error"`
}

// ErrorBody is the "error" object of ErrorEnvelope.
type ErrorBody struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}
