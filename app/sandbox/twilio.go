package sandbox

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Twilio stands in for Twilio's REST API: GET /2010-04-01/Accounts/{sid}.json
// and POST /2010-04-01/Accounts/{sid}/Messages.json, with HTTP Basic auth
// (Account SID : Auth Token). Errors have Twilio's shape {code, message,
// more_info, status}.
//
// The Account SID must match ^AC[0-9a-fA-F]{32}$ and the Auth Token must not
// be empty, otherwise the answer is 401 (code 20003 "Authenticate"). The
// usual markers apply to the Auth Token ("echo" is answered 403, code
// 20403, with Echo's message of "SID:token"); besides, a token containing
// "suspended" or "closed" belongs to an account with that status: reading
// the account works (status "suspended"/"closed"), sending is refused with
// 401 code 20005 "Account not active". A path SID other than the
// authenticated one is answered 404 (code 20404).
//
// Every accepted message is recorded; see Messages.
type Twilio struct {
	mux *http.ServeMux

	mu       sync.Mutex
	messages []TwilioMessage
}

// TwilioMessage is one message the stand-in accepted, with the credentials
// it was sent with, so tests can assert who sent what from which number.
// From and To are as posted (with the "whatsapp:" prefix for WhatsApp).
type TwilioMessage struct {
	SID        string
	AccountSID string
	AuthToken  string
	From, To   string
	Body       string
	// Channel is "sms" or "whatsapp".
	Channel string
}

var (
	twilioSIDPattern   = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	twilioE164         = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	twilioStartupStamp = time.Date(2024, 1, 2, 15, 4, 5, 0, time.UTC)
)

// NewTwilio returns a Twilio stand-in with no recorded messages.
func NewTwilio() *Twilio {
	t := &Twilio{}
	t.mux = http.NewServeMux()
	t.mux.HandleFunc("GET /2010-04-01/Accounts/{file}", t.account)
	t.mux.HandleFunc("POST /2010-04-01/Accounts/{sid}/Messages.json", t.send)
	t.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		twilioError(w, http.StatusNotFound, 20404, fmt.Sprintf("The requested resource %s was not found", r.URL.Path))
	})
	return t
}

// Messages returns a copy of every message accepted so far, oldest first.
func (t *Twilio) Messages() []TwilioMessage {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.messages)
}

// ServeHTTP authenticates the request, then serves the account and message
// routes.
func (t *Twilio) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sid, token, ok := r.BasicAuth()
	if !holdIfSlow(r, token) {
		return
	}
	switch {
	case has(token, "down"):
		twilioError(w, http.StatusServiceUnavailable, 20503, "Service Unavailable")
		return
	case has(token, "ratelimit"):
		twilioError(w, http.StatusTooManyRequests, 20429, "Too Many Requests")
		return
	case !ok || !twilioSIDPattern.MatchString(sid) || token == "" || has(token, "invalid"):
		twilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	case has(token, "echo"):
		twilioError(w, http.StatusForbidden, 20403, Echo(sid+":"+token))
		return
	}
	t.mux.ServeHTTP(w, r)
}

func (t *Twilio) account(w http.ResponseWriter, r *http.Request) {
	sid, token, _ := r.BasicAuth()
	pathSID, ok := strings.CutSuffix(r.PathValue("file"), ".json")
	if !ok || pathSID != sid {
		twilioError(w, http.StatusNotFound, 20404, fmt.Sprintf("The requested resource %s was not found", r.URL.Path))
		return
	}
	stamp := twilioStartupStamp.Format(time.RFC1123Z)
	writeJSON(w, http.StatusOK, map[string]any{
		"sid":               sid,
		"owner_account_sid": sid,
		"friendly_name":     "Sandbox account",
		"status":            twilioAccountStatus(token),
		"type":              "Full",
		"date_created":      stamp,
		"date_updated":      stamp,
		"uri":               "/2010-04-01/Accounts/" + sid + ".json",
		"subresource_uris": map[string]string{
			"messages": "/2010-04-01/Accounts/" + sid + "/Messages.json",
		},
	})
}

func twilioAccountStatus(token string) string {
	switch {
	case has(token, "suspended"):
		return "suspended"
	case has(token, "closed"):
		return "closed"
	}
	return "active"
}

func (t *Twilio) send(w http.ResponseWriter, r *http.Request) {
	sid, token, _ := r.BasicAuth()
	if r.PathValue("sid") != sid {
		twilioError(w, http.StatusNotFound, 20404, fmt.Sprintf("The requested resource %s was not found", r.URL.Path))
		return
	}
	if twilioAccountStatus(token) != "active" {
		twilioError(w, http.StatusUnauthorized, 20005, "Account not active")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		twilioError(w, http.StatusBadRequest, 20001, "Unable to parse the request body")
		return
	}
	to, from, body := r.PostForm.Get("To"), r.PostForm.Get("From"), r.PostForm.Get("Body")
	if from == "" {
		from = r.PostForm.Get("MessagingServiceSid")
	}
	toNumber, toWA := strings.CutPrefix(to, "whatsapp:")
	fromNumber, fromWA := strings.CutPrefix(from, "whatsapp:")
	switch {
	case to == "":
		twilioError(w, http.StatusBadRequest, 21604, "A 'To' phone number is required.")
	case from == "":
		twilioError(w, http.StatusBadRequest, 21603, "A 'From' phone number is required.")
	case body == "" && r.PostForm.Get("ContentSid") == "" && r.PostForm.Get("MediaUrl") == "":
		twilioError(w, http.StatusBadRequest, 21602, "Message body is required.")
	case toWA != fromWA:
		twilioError(w, http.StatusBadRequest, 21910, "Invalid From and To pair. From and To should be of the same channel")
	case !twilioE164.MatchString(toNumber):
		twilioError(w, http.StatusBadRequest, 21211, fmt.Sprintf("Invalid 'To' Phone Number: %s", clip(toNumber)))
	case !twilioE164.MatchString(fromNumber):
		twilioError(w, http.StatusBadRequest, 21212, fmt.Sprintf("Invalid From Number (caller ID): %s", clip(fromNumber)))
	case utf8.RuneCountInString(body) > 1600:
		twilioError(w, http.StatusBadRequest, 21617, "The concatenated message body exceeds the 1600 character limit.")
	default:
		m := TwilioMessage{SID: "SM" + randomHex(16), AccountSID: sid, AuthToken: token, From: from, To: to, Body: body, Channel: "sms"}
		if toWA {
			m.Channel = "whatsapp"
		}
		t.mu.Lock()
		t.messages = append(t.messages, m)
		t.mu.Unlock()
		stamp := time.Now().UTC().Format(time.RFC1123Z)
		writeJSON(w, http.StatusCreated, map[string]any{
			"sid":                   m.SID,
			"account_sid":           sid,
			"to":                    to,
			"from":                  from,
			"body":                  body,
			"status":                "queued",
			"direction":             "outbound-api",
			"num_segments":          "1",
			"num_media":             "0",
			"api_version":           "2010-04-01",
			"messaging_service_sid": nil,
			"price":                 nil,
			"price_unit":            "USD",
			"error_code":            nil,
			"error_message":         nil,
			"date_created":          stamp,
			"date_updated":          stamp,
			"date_sent":             nil,
			"uri":                   "/2010-04-01/Accounts/" + sid + "/Messages/" + m.SID + ".json",
		})
	}
}

// twilioError answers Twilio's error shape.
func twilioError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{
		"code":      code,
		"message":   msg,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
		"status":    status,
	})
}

// clip shortens echoed input so an error answer stays small.
func clip(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40])
	}
	return s
}
