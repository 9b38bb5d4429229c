// Package views holds BYOC's templ components: the layout, the pages, and
// the fragments the pages embed. Every fragment that HTMX swaps has a stable
// id and a data-testid, and a page always embeds its fragments, so a partial
// answer and the full page never drift apart.
//
// Components take small props structs defined here; they know nothing of
// HTTP, sessions or the database.
package views

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

// Integrations is the dashboard's view model. For now it only names the org.
type Integrations struct {
	OrgName string
}

// ErrorView is an error as a page or a fragment shows it.
type ErrorView struct {
	Status    int
	Title     string
	Message   string
	RequestID string
}

// field describes one labelled input.
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
