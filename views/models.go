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
	"byoc/app/paths"
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
	// FlashWarning is an outcome that worked with a caveat (amber).
	FlashWarning = "warning"
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
	// Secret inputs get a show/hide toggle.
	Secret      bool
	Placeholder string
	Attrs       templ.Attributes
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
	case FlashWarning:
		return "alert alert-warning"
	}
	return "alert alert-info"
}

// Integrations is the dashboard's view model: one card per provider (in
// app.Providers order) and, for admins, the settings form of each provider
// that is configured with a key.
type Integrations struct {
	OrgName string
	// Attention, when not empty, is the banner above the cards naming the
	// connections that need attention (see AttentionOf).
	// CanManage is set for admins: only they see Configure, Test connection
	// and Disconnect, and only their page carries the settings dialogs.
	CanManage bool
	Cards     []Card
	Forms     []ConfigureForm
	Attention []Attention
}

// Attention is one connection the dashboard's banner names: its provider's
// title and, in plain words, what is wrong.
type Attention struct {
	Provider app.Provider
	Title    string
	Problem  string
}

// AttentionOf lists, in the cards' order, the stored connections that need
// attention: a failing one (with its reason) and one not checked recently.
func AttentionOf(cards []Card) []Attention {
	var out []Attention
	for _, c := range cards {
		switch {
		case c.Status.NeedsAttention || c.Status.VerificationError != "":
			problem := c.Status.VerificationError
			if problem == "" {
				problem = "It stopped working."
			}
			out = append(out, Attention{Provider: c.Status.Provider, Title: c.Spec.Title, Problem: problem})
		case c.Stale:
			out = append(out, Attention{Provider: c.Status.Provider, Title: c.Spec.Title,
				Problem: "It has not passed a check recently."})
		}
	}
	return out
}

// NotCheckedRecently reports whether st is a stored connection whose last
// passed check (LastVerified) is older than twice the re-verification
// interval at now, or which never passed one. With no interval (the
// checks are off) nothing is.
func NotCheckedRecently(st app.Status, interval time.Duration, now time.Time) bool {
	if interval <= 0 || !(st.Connected || st.NeedsAttention) {
		return false
	}
	return st.LastVerified == nil || now.Sub(*st.LastVerified) > 2*interval
}

// Card is one provider's card on the dashboard (id "card-<provider>").
type Card struct {
	// Spec describes the provider.
	Spec *app.Spec
	// Status is the provider's state, with masked details only.
	Status    app.Status
	CanManage bool
	// SignInReady says whether this server can run the sign-in flow of an
	// OAuth provider; without it such a card offers no Connect button.
	SignInReady bool
	// Now is the time "last verified" is told relative to.
	Now time.Time
	// Stale marks a stored connection whose last passed check is too old
	// (NotCheckedRecently): the card says "Not checked recently".
	Stale bool
	// Result is the outcome of the action that re-rendered the card (a
	// connection test, a disconnect), shown on the card; nil for none.
	Result *Notice
	// OOB marks the card for an out-of-band swap (hx-swap-oob), when it
	// travels along with another fragment.
	OOB bool
	// Announce, when set, is what the page's live region says about the
	// action that re-rendered the card.
	Announce string
	// Assistants are the org's assistants and WebhookURL the address they
	// send their events to (providers that manage assistants).
	Assistants []app.AssistantMapping
	WebhookURL string
	// LastDelivery, when set, is when the org last recorded a webhook
	// delivery (providers that manage assistants).
	LastDelivery *LastDelivery
	// NextForm, when set, becomes the provider's settings dialog's form
	// (the Configure form again after a disconnect).
	NextForm *ConfigureForm
	// ShownSecret is the webhook secret a rotation or reveal answers, shown
	// on the card this once with a copy button; zero otherwise.
	ShownSecret app.Secret
}

// LastDelivery is when the org's last webhook delivery was recorded; Any
// is false when none was.
type LastDelivery struct {
	At  time.Time
	Any bool
}

// Notice is a one-line outcome; Kind is one of the Flash* kinds.
type Notice struct {
	Kind    string
	Message string
}

// ConfigureForm is one provider's settings form (id "form-<provider>"),
// with a field per field of its Spec: the values entered so far that may be
// shown again (never an API key, token or secret: those fields always come
// back empty) and the messages.
type ConfigureForm struct {
	Spec      *app.Spec
	CSRFToken string
	// Update marks the form of a stored connection: it sends only a
	// change (PATCH), a blank secret keeping the stored one.
	Update bool
	// Values holds the non-secret fields by their form names.
	Values map[string]string
	// Secrets are the stored secrets by field name, masked (Update only).
	Secrets map[string]string
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
	// Limited is set for credentials that are valid with limited scope;
	// Warning says what they cannot do.
	Limited bool
	Warning string
	// InboundAssistantID and OutboundAssistantID are the org's Vapi
	// assistants (Vapi only).
	InboundAssistantID, OutboundAssistantID string
	// MaskedPhone is the SMS number with its middle hidden (Twilio only).
	MaskedPhone string
	Card        Card
	// Next, when set, is the form the dialog shows from now on (the Update
	// form of the connection just saved).
	Next *ConfigureForm
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
	return !c.Spec.OAuth || c.SignInReady || c.stored()
}

// ID is the id of the card ("card-<provider>") or, with a suffix, of one of
// its parts ("card-<provider>-<suffix>").
func (c Card) ID(suffix string) string { return c.id(suffix) }

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

// details returns the card's masked details in the order of the provider's
// fields.
func (c Card) details() []detail {
	var out []detail
	for _, f := range c.Spec.Fields {
		v := c.Status.Details[f.Name]
		if v == "" {
			continue
		}
		if f.Kind == app.FieldChoice {
			v = strings.ToUpper(v)
		}
		out = append(out, detail{Label: f.DisplayLabel(), Value: v})
	}
	return out
}

// webhookSigning reports whether the card shows the HMAC-only webhook
// setting: for a stored connection of a provider whose assistants BYOC
// configures.
func (c Card) webhookSigning() bool { return c.Spec.ManagesAssistants && c.stored() }

// webhookSecret reports whether the card shows the webhook secret's state
// and controls (a stored connection of a provider that manages
// assistants).
func (c Card) webhookSecret() bool {
	return c.Spec.ManagesAssistants && c.Status.Connected && c.Status.WebhookSecret != nil
}

// secretOwn says whether the org has a webhook secret of its own.
func (c Card) secretOwn() bool { return c.Status.WebhookSecret != nil && c.Status.WebhookSecret.Own }

// canReveal says whether the current secret may still be revealed: an
// own secret that was never shown.
func (c Card) canReveal() bool {
	return c.secretOwn() && c.Status.WebhookSecret.RevealedAt == nil && c.ShownSecret.IsZero()
}

// secretRevealedWhen is when the current secret was shown, for the card
// ("" when it was not).
func (c Card) secretRevealedWhen() string {
	if c.Status.WebhookSecret == nil || c.Status.WebhookSecret.RevealedAt == nil {
		return ""
	}
	return c.Status.WebhookSecret.RevealedAt.UTC().Format("2 Jan 2006 15:04 MST")
}

// previousUntil is when the secret a rotation replaced stops being
// accepted ("" when none is).
func (c Card) previousUntil() string {
	if c.Status.WebhookSecret == nil || c.Status.WebhookSecret.PreviousUntil == nil {
		return ""
	}
	return c.Status.WebhookSecret.PreviousUntil.UTC().Format("2 Jan 2006 15:04 MST")
}

// hmacOnlyAttr is the setting as an attribute value, "true" or "false".
func (c Card) hmacOnlyAttr() string { return strconv.FormatBool(c.Status.WebhookHMACOnly) }

// hmacOnlyToggleVals is the body the switch posts: the other setting.
func (c Card) hmacOnlyToggleVals() string {
	return `{"hmacOnly": "` + strconv.FormatBool(!c.Status.WebhookHMACOnly) + `"}`
}

// problemTitle heads the card's verification error.
func (c Card) problemTitle() string {
	if c.Status.ReconnectNeeded() {
		return "Reconnect needed"
	}
	return "The last check failed"
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

// limited reports whether the card shows the Limited badge: a connection
// whose last passed check found limited access, and no failure since.
func (c Card) limited() bool {
	return c.Status.Connected && !c.Status.NeedsAttention && c.Status.Limited
}

// checkedSinceVerified reports whether the last check came after the last
// passed one (so it failed).
func (c Card) checkedSinceVerified() bool {
	lc, lv := c.Status.LastChecked, c.Status.LastVerified
	return lc != nil && (lv == nil || lc.After(*lv))
}

func (c Card) checkedTitle() string { return c.Status.LastChecked.UTC().Format("2006-01-02 15:04 UTC") }

func (c Card) checkedDatetime() string { return c.Status.LastChecked.UTC().Format(time.RFC3339) }

func (c Card) checkedAgo() string {
	cc := c
	cc.Status.LastVerified = c.Status.LastChecked
	return cc.verifiedAgo()
}

// disconnectQuestion is the question the Disconnect button asks first.
func (c Card) disconnectQuestion() string {
	q := "Disconnect " + c.Spec.Title + "?"
	if c.Spec.Disconnect != "" {
		q += " " + c.Spec.Disconnect
	}
	return q + " The stored credentials are deleted; connect again to undo."
}

// assistant is one of the org's assistants as a card lists it.
type assistant struct{ Label, ID, Role string }

func (c Card) assistants() []assistant {
	var out []assistant
	for _, m := range c.Assistants {
		label := "Outbound assistant"
		if m.Role == app.Inbound {
			label = "Inbound assistant"
		}
		out = append(out, assistant{label, m.VapiAssistantID, string(m.Role)})
	}
	return out
}

// Title is the form's heading: "Update Vapi" for a stored connection,
// "Connect Vapi" otherwise.
func (f ConfigureForm) Title() string {
	if f.Update {
		return "Update " + f.Spec.Title
	}
	return "Connect " + f.Spec.Title
}

func (f ConfigureForm) provider() app.Provider { return f.Spec.Provider }

func (f ConfigureForm) id(suffix string) string {
	return string(f.provider()) + "-" + suffix
}

func (f ConfigureForm) action() string { return paths.Integration(string(f.provider())) }

func (f ConfigureForm) bodyID() string { return "dialog-" + string(f.provider()) + "-body" }

func dialogID(p app.Provider) string { return "dialog-" + string(p) }

// input returns the form control of the spec's field sf: its kept value
// (never for a secret), its message and the HTML attributes of its rules,
// the same the server checks.
func (f ConfigureForm) input(sf app.Field) field {
	fl := field{ID: f.id(sf.Name), Name: sf.Name, Label: sf.Label, Error: f.Errors[sf.Name], Autocomplete: "off",
		Optional: !sf.Required, Placeholder: sf.Placeholder, Hint: sf.Hint, Attrs: templ.Attributes{}}
	if !sf.Secret() {
		fl.Value = f.Values[sf.Name]
	}
	if stored := f.Secrets[sf.Name]; f.Update && sf.Secret() {
		// A blank secret keeps the stored one.
		fl.Optional = true
		if stored != "" {
			fl.Hint = "Stored: " + storedLabel(stored) + ". Leave blank to keep it."
		} else {
			fl.Hint = "Leave blank to keep what is stored."
		}
	}
	if sf.MinLength > 0 {
		fl.Attrs["minlength"] = strconv.Itoa(sf.MinLength)
	}
	if sf.MaxLength > 0 {
		fl.Attrs["maxlength"] = strconv.Itoa(sf.MaxLength)
	}
	if sf.Pattern != "" {
		fl.Attrs["pattern"] = sf.Pattern
	}
	if sf.PatternTitle != "" {
		fl.Attrs["title"] = sf.PatternTitle
	}
	switch sf.Kind {
	case app.FieldSecret:
		fl.Type, fl.Secret = "password", true
		fl.Attrs["spellcheck"], fl.Attrs["autocapitalize"] = "false", "off"
	case app.FieldPhone:
		// The server reads the number with its own rules (any spacing or
		// punctuation) and shows a stored one in its country's grouping.
		fl.Type = "tel"
		fl.Placeholder = "+44 20 7183 8750"
		fl.Attrs["inputmode"], fl.Attrs["maxlength"] = "tel", "32"
		if f.Update && f.Values[sf.Name] != "" && f.Errors == nil && f.Message == "" {
			fl.Value = app.FormatPhone(fl.Value)
		}
	case app.FieldEmail:
		fl.Type = "email"
		if fl.Placeholder == "" {
			fl.Placeholder = "hello@example.com"
		}
	default:
		fl.Type = "text"
		fl.Attrs["spellcheck"], fl.Attrs["autocapitalize"] = "false", "off"
	}
	return fl
}

// choice is the selected value of a choice field: the kept one, else its
// first option.
func (f ConfigureForm) choice(sf app.Field) string {
	if v := f.Values[sf.Name]; v != "" {
		return strings.ToLower(strings.TrimSpace(v))
	}
	if len(sf.Options) > 0 {
		return sf.Options[0].Value
	}
	return ""
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

// storedLabel is how the form names a stored secret's mask.
func storedLabel(mask string) string {
	if mask == app.SecretSet {
		return "a secret is set"
	}
	return mask
}

func noticeClass(kind string) string {
	switch kind {
	case FlashSuccess:
		return "notice notice-success"
	case FlashError:
		return "notice notice-error"
	case FlashWarning:
		return "notice notice-warning"
	}
	return "notice notice-info"
}

// oob returns c marked for an out-of-band swap.
func oob(c Card) Card {
	c.OOB = true
	return c
}

// helpSubject names what a help item's link leads to.
func helpSubject(it app.HelpItem) string {
	if it.Term != "" {
		return it.Term
	}
	return "this"
}
