package sandbox

import (
	"net/http"
)

// ElevenLabs stands in for ElevenLabs' API: GET /v1/user and GET /v1/voices
// with the header `xi-api-key`. Errors have ElevenLabs' shape
// {"detail": {"status", "message"}}.
//
// A missing key is answered 401 needs_authorization; a key containing
// "invalid" 401 invalid_api_key on every route (with Echo's message for one
// containing "echo"); a key containing
// "restricted" lacks the User: Read permission (401 missing_permissions on
// /v1/user, voices still listed); a key containing "ttsonly" lacks both
// User: Read and Voices: Read (401 missing_permissions on both routes).
// "down", "ratelimit" and "slow" behave as the package describes.
type ElevenLabs struct {
	mux *http.ServeMux
}

// NewElevenLabs returns an ElevenLabs stand-in.
func NewElevenLabs() *ElevenLabs {
	e := &ElevenLabs{mux: http.NewServeMux()}
	e.mux.HandleFunc("GET /v1/user", e.user)
	e.mux.HandleFunc("GET /v1/voices", e.voices)
	e.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		elevenLabsError(w, http.StatusNotFound, "not_found", "Not Found")
	})
	return e
}

// ServeHTTP checks the key, then serves the routes.
func (e *ElevenLabs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("xi-api-key")
	if !holdIfSlow(r, key) {
		return
	}
	switch {
	case key == "":
		elevenLabsError(w, http.StatusUnauthorized, "needs_authorization",
			"Neither authorization header nor xi-api-key received, please provide one.")
	case has(key, "down"):
		elevenLabsError(w, http.StatusServiceUnavailable, "service_unavailable", "The service is temporarily unavailable.")
	case has(key, "ratelimit"):
		elevenLabsError(w, http.StatusTooManyRequests, "too_many_concurrent_requests",
			"Your current subscription is associated with a maximum of 2 concurrent requests.")
	case has(key, "invalid"):
		elevenLabsError(w, http.StatusUnauthorized, "invalid_api_key", "Invalid API key")
	case has(key, "echo"):
		elevenLabsError(w, http.StatusUnauthorized, "invalid_api_key", Echo(key))
	default:
		e.mux.ServeHTTP(w, r)
	}
}

func (e *ElevenLabs) user(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("xi-api-key")
	if has(key, "restricted") || has(key, "ttsonly") {
		elevenLabsMissing(w, "user_read")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"user_id": stableUUID("elevenlabs-user", key),
		"subscription": map[string]any{
			"tier":            "creator",
			"character_count": 1200,
			"character_limit": 100000,
			"status":          "active",
		},
		"is_new_user":             false,
		"xi_api_key":              key,
		"first_name":              "Sandbox",
		"is_onboarding_completed": true,
	})
}

func (e *ElevenLabs) voices(w http.ResponseWriter, r *http.Request) {
	if has(r.Header.Get("xi-api-key"), "ttsonly") {
		elevenLabsMissing(w, "voices_read")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"voices": []map[string]any{
			{"voice_id": "21m00Tcm4TlvDq8ikWAM", "name": "Rachel", "category": "premade"},
			{"voice_id": "pNInz6obpgDQGcFmaJgB", "name": "Adam", "category": "premade"},
		},
		"has_more": false,
	})
}

func elevenLabsMissing(w http.ResponseWriter, permission string) {
	elevenLabsError(w, http.StatusUnauthorized, "missing_permissions",
		"The API key you used is missing the permission "+permission+" to execute this operation.")
}

// elevenLabsError answers ElevenLabs' error shape.
func elevenLabsError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"detail": map[string]string{"status": code, "message": msg}})
}
