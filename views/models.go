// Package views holds BYOC's templ components: the layout, the pages, and
// the fragments the pages embed. Every fragment that HTMX swaps has a stable
// id and a data-testid, and a page always embeds its fragments, so a partial
// answer and the full page never drift apart.
//
// Components take small props structs defined here; they know nothing of
// HTTP, sessions or the database.
package views

import (
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"

	"byoc/app"
)

// Page is what the layout needs on every full page.
type Page struct {
	// Title is the page's name; the layout appends the product name.
	Title string
	// CSRFToken goes into <meta name="csrf-token"> and into every form.
	CSRFToken string
	// Assets are the versioned URLs of the static files.
	Assets Assets
	// Flashes are one-time messages from the previous request.
	Flashes []Flash
	// User is the signed-in user for the header, or nil.
	User *User
	// Sandbox marks a server whose providers are local stand-ins; the header
	// then shows a "Sandbox" badge.
	Sandbox bool
}

// Assets are the URLs of the static files the layout links.
type Assets struct {
	CSS, HTMX, AppJS, Favicon string
}

// Flash kinds.
const (
	FlashSuccess = "success"
	FlashInfo    = "info"
	FlashError   = "error"
)

// Flash is a one-time message shown at the top of the next page.
type Flash struct {
	Kind    string `json:"k"`
	Message string `json:"m"`
}

// User is the signed-in user as the header shows them.
type User struct {
	Email   string
	OrgName string
	IsAdmin bool
}

// FieldErrors maps a form field's name to its message.
type FieldErrors map[string]string

// SignupForm is the signup form's state: the values entered so far (never
// the password) and the messages to show.
type SignupForm struct {
	CSRFToken string
	OrgName   string
	Email     string
	// Message is a form-wide error, shown above the fields.
	Message string
	Errors  FieldErrors
}

// LoginForm is the login form's state: the email entered so far (never the
// password), where to go after signing in, and the messages to show.
type LoginForm struct {
	CSRFToken string
	Email     string
	Next      string
	Message   string
	Errors    FieldErrors
}

// ErrorView is an error as a page or a fragment shows it.
type ErrorView struct {
	Status    int
	Title     string
	Message   string
	RequestID string
}

// field describes one labelled input. Inputs are required unless Optional;
// Attrs adds further attributes (minlength, pattern, inputmode, ...).
type field struct {
	ID           string
	Name         string
	Label        string
	Type         string
	Value        string
	Autocomplete string
	Hint         string
	Error        string
	Autofocus    bool
	Optional     bool
	Placeholder  string
	Attrs        templ.Attributes
}

func (f field) errorID() string { return f.ID + "-error" }
func (f field) hintID() string  { return f.ID + "-hint" }

// describedBy lists the ids of the hint and the error, for aria-describedby.
func (f field) describedBy() string {
	switch {
	case f.Hint != "" && f.Error != "":
		return f.hintID() + " " + f.errorID()
	case f.Error != "":
		return f.errorID()
	case f.Hint != "":
		return f.hintID()
	}
	return ""
}

func flashClass(kind string) string {
	switch kind {
	case FlashSuccess:
		return "alert alert-success"
	case FlashError:
		return "alert alert-error"
	}
	return "alert alert-info"
}

// Integrations is the dashboard's view model: one card per provider (in
// app.Providers order) and, for admins, the settings form of each provider
// that is configured with a key.
type Integrations struct {
	OrgName string
	// CanManage is set for admins: only they see Configure, Test connection
	// and Disconnect, and only their page carries the settings dialogs.
	CanManage bool
	Cards     []Card
	Forms     []ConfigureForm
}

// Card is one provider's card on the dashboard (id "card-<provider>").
type Card struct {
	// Status is the provider's state, with masked details only.
	Status    app.Status
	CanManage bool
	// GoogleConfigured says whether this server can run the Google sign-in
	// flow; without it the Google Calendar card offers no Connect button.
	GoogleConfigured bool
	// Now is the time "last verified" is told relative to.
	Now time.Time
	// Result is the outcome of the action that re-rendered the card (a
	// connection test, a disconnect), shown on the card; nil for none.
	Result *Notice
	// OOB marks the card for an out-of-band swap (hx-swap-oob), when it
	// travels along with another fragment.
	OOB bool
}

// Notice is a one-line outcome; Kind is one of the Flash* kinds.
type Notice struct {
	Kind    string
	Message string
}

// ConfigureForm is one provider's settings form (id "form-<provider>"):
// the values entered so far that may be shown again (never an API key,
// token or secret: those fields always come back empty) and the messages.
type ConfigureForm struct {
	Provider  app.Provider
	CSRFToken string
	// Values holds the non-secret fields by their form names.
	Values map[string]string
	// Message is a form-wide error (the provider refused the credentials or
	// could not be reached), shown above the fields.
	Message string
	Errors  FieldErrors
}

// ConfigureSuccess is what the settings dialog shows after a save; the
// provider's new card travels along out of band.
type ConfigureSuccess struct {
	Provider app.Provider
	// Detail says in plain words what the verification found.
	Detail string
	// Limited is set for credentials that are valid with limited scope.
	Limited bool
	// InboundAssistantID and OutboundAssistantID are the org's Vapi
	// assistants (Vapi only).
	InboundAssistantID, OutboundAssistantID string
	// MaskedPhone is the SMS number with its middle hidden (Twilio only).
	MaskedPhone string
	Card        Card
}

// Card states, as data-state values.
const (
	StateNotConfigured  = "not-configured"
	StateConnected      = "connected"
	StateNeedsAttention = "needs-attention"
)

// State is the card's state: StateNeedsAttention, StateConnected or
// StateNotConfigured.
func (c Card) State() string {
	switch {
	case c.Status.NeedsAttention:
		return StateNeedsAttention
	case c.Status.Connected:
		return StateConnected
	}
	return StateNotConfigured
}

// StateLabel is the state in words.
func (c Card) StateLabel() string {
	switch c.State() {
	case StateNeedsAttention:
		return "Needs attention"
	case StateConnected:
		return "Connected"
	}
	return "Not configured"
}

// stored reports whether anything is stored for the provider (so it can be
// disconnected).
func (c Card) stored() bool { return c.Status.Connected || c.Status.NeedsAttention }

// hasActions reports whether the card has buttons for the user.
func (c Card) hasActions() bool {
	if !c.CanManage {
		return false
	}
	return c.Status.Provider != app.GoogleCalendar || c.GoogleConfigured || c.stored()
}

func (c Card) id(suffix string) string {
	if suffix == "" {
		return "card-" + string(c.Status.Provider)
	}
	return "card-" + string(c.Status.Provider) + "-" + suffix
}

func (c Card) badgeClass() string {
	switch c.State() {
	case StateNeedsAttention:
		return "badge badge-amber"
	case StateConnected:
		return "badge badge-green"
	}
	return "badge badge-slate"
}

// detail is one masked fact on a card.
type detail struct{ Label, Value string }

// detailLabels orders and names the masked details a status carries.
var detailLabels = []struct{ key, label string }{
	{"apiKey", "API key"},
	{"region", "Region"},
	{"webhookSecret", "Webhook secret"},
	{"accountSid", "Account SID"},
	{"authToken", "Auth Token"},
	{"phoneNumber", "SMS number"},
	{"whatsappNumber", "WhatsApp number"},
	{"email", "Google account"},
	{"fromEmail", "Sender"},
	{"voiceId", "Voice ID"},
}

// details returns the card's masked details in display order.
func (c Card) details() []detail {
	var out []detail
	for _, d := range detailLabels {
		v := c.Status.Details[d.key]
		if v == "" {
			continue
		}
		if d.key == "region" {
			v = strings.ToUpper(v)
		}
		out = append(out, detail{Label: d.label, Value: v})
	}
	return out
}

// reconnectPrefix starts a verification error that says the provider's
// authorization is gone and the account must be connected again (Google
// Calendar's refused refresh).
const reconnectPrefix = "Reconnect needed:"

// problemTitle heads the card's verification error: "Reconnect needed" when
// the error says so, else "The last check failed".
func (c Card) problemTitle() string {
	if strings.HasPrefix(c.Status.VerificationError, reconnectPrefix) {
		return "Reconnect needed"
	}
	return "The last check failed"
}

// problemReason is the verification error under its title, without the
// "Reconnect needed:" the title already says.
func (c Card) problemReason() string {
	if r, ok := strings.CutPrefix(c.Status.VerificationError, reconnectPrefix); ok {
		return strings.TrimSpace(r)
	}
	return c.Status.VerificationError
}

// verifiedAgo tells the last verification time relative to Now ("just now",
// "5 minutes ago"), or as a date when it is older than a day.
func (c Card) verifiedAgo() string {
	t := *c.Status.LastVerified
	d := c.Now.Sub(t)
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit + " ago"
		}
		return strconv.Itoa(n) + " " + unit + "s ago"
	}
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute")
	case d < 24*time.Hour:
		return plural(int(d/time.Hour), "hour")
	}
	return t.UTC().Format("Jan 2, 2006")
}

func (c Card) verifiedTitle() string {
	return c.Status.LastVerified.UTC().Format("2006-01-02 15:04 UTC")
}

func (c Card) verifiedDatetime() string {
	return c.Status.LastVerified.UTC().Format(time.RFC3339)
}

// providerInfo is how the dashboard presents a provider.
type providerInfo struct {
	Description string
	Initial     string
	LogoClass   string
}

var providerInfos = map[app.Provider]providerInfo{
	app.Vapi:           {"Voice assistants that answer and place calls", "V", "bg-indigo-600"},
	app.Twilio:         {"SMS and WhatsApp messages", "T", "bg-rose-600"},
	app.GoogleCalendar: {"Appointments in your calendar", "G", "bg-sky-600"},
	app.Resend:         {"Transactional e-mail", "R", "bg-slate-900"},
	app.ElevenLabs:     {"Natural voices for your assistants", "E", "bg-violet-600"},
}

func info(p app.Provider) providerInfo { return providerInfos[p] }

func (f ConfigureForm) id(suffix string) string {
	return string(f.Provider) + "-" + suffix
}

func (f ConfigureForm) action() string { return "/api/integrations/" + string(f.Provider) }

func (f ConfigureForm) bodyID() string { return "dialog-" + string(f.Provider) + "-body" }

// input returns the field of form name, with its kept value and message.
// Secret fields never get a value.
func (f ConfigureForm) input(name, label, typ string, secret bool) field {
	fl := field{ID: f.id(name), Name: name, Label: label, Type: typ, Error: f.Errors[name], Autocomplete: "off"}
	if !secret {
		fl.Value = f.Values[name]
	}
	return fl
}

func dialogID(p app.Provider) string { return "dialog-" + string(p) }

// twilioSIDPattern is the Account SID's format as an HTML pattern (anchored
// by the browser). The forms' length limits are app's Min*/Max* constants,
// the same the server enforces.
const twilioSIDPattern = "AC[0-9a-fA-F]{32}"

// secret is a password-type field for a key, token or secret: never
// pre-filled, never spell-checked.
func (f ConfigureForm) secret(name, label string, minLength int, optional bool) field {
	fl := f.input(name, label, "password", true)
	fl.Optional = optional
	maxLength := app.MaxKeyLength
	if f.Provider == app.Twilio {
		maxLength = app.MaxTwilioTokenLength
	}
	fl.Attrs = templ.Attributes{
		"minlength":      strconv.Itoa(minLength),
		"maxlength":      strconv.Itoa(maxLength),
		"spellcheck":     "false",
		"autocapitalize": "off",
	}
	return fl
}

func (f ConfigureForm) accountSID() field {
	fl := f.input("accountSid", "Account SID", "text", false)
	fl.Placeholder = "AC…"
	fl.Attrs = templ.Attributes{
		"pattern":        twilioSIDPattern,
		"maxlength":      "34",
		"title":          "AC followed by 32 hexadecimal characters",
		"spellcheck":     "false",
		"autocapitalize": "off",
	}
	return fl
}

// phone is a telephone field that static/js/app.js formats as it is typed
// (data-phone) and sends as digits with an optional leading +.
func (f ConfigureForm) phone(name, label string, optional bool) field {
	fl := f.input(name, label, "tel", false)
	fl.Optional = optional
	fl.Placeholder = "+1 (202) 555-0142"
	if !optional {
		fl.Hint = "With the country code, such as +44 for the UK; US numbers may leave it out."
	}
	fl.Attrs = templ.Attributes{"inputmode": "tel", "data-phone": true, "maxlength": "24"}
	return fl
}

func (f ConfigureForm) resendKey() field {
	fl := f.secret("apiKey", "API key", app.MinResendKeyLength, false)
	fl.Attrs["pattern"] = `re_\S+`
	fl.Attrs["title"] = "A Resend API key starts with re_"
	return fl
}

func (f ConfigureForm) email(name, label string) field {
	fl := f.input(name, label, "email", false)
	fl.Optional = true
	fl.Placeholder = "hello@example.com"
	fl.Attrs = templ.Attributes{"maxlength": "254"}
	return fl
}

func (f ConfigureForm) voiceID() field {
	fl := f.input("voiceId", "Voice ID", "text", false)
	fl.Optional = true
	fl.Placeholder = "21m00Tcm4TlvDq8ikWAM"
	fl.Attrs = templ.Attributes{
		"pattern":        "[A-Za-z0-9]+",
		"maxlength":      strconv.Itoa(app.MaxVoiceIDLength),
		"title":          "Letters and digits only",
		"spellcheck":     "false",
		"autocapitalize": "off",
	}
	return fl
}

// describedBy lists the hint's and the error's ids of the control id, for
// aria-describedby.
func describedBy(id string, hint, err bool) string {
	var ids []string
	if hint {
		ids = append(ids, id+"-hint")
	}
	if err {
		ids = append(ids, id+"-error")
	}
	return strings.Join(ids, " ")
}

func noticeClass(kind string) string {
	switch kind {
	case FlashSuccess:
		return "notice notice-success"
	case FlashError:
		return "notice notice-error"
	}
	return "notice notice-info"
}

// oob returns c marked for an out-of-band swap.
func oob(c Card) Card {
	c.OOB = true
	return c
}
