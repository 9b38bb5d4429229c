package web

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/a-h/templ"
	"github.com/gofiber/fiber/v2"

	"byoc/app"
	"byoc/app/paths"
	"byoc/views"
)

// format is how a request wants its answer.
type format int

const (
	// formatPage is a full HTML page: plain navigation, boosted links and
	// forms, and htmx history restores.
	formatPage format = iota
	// formatFragment is the HTML fragment an htmx request swaps in.
	formatFragment
	// formatJSON is the JSON envelope for API clients.
	formatJSON
)

// negotiate decides the answer's format, in this order: an htmx request
// (HX-Request) gets a fragment unless it is boosted (HX-Boosted) or a
// history restore (HX-History-Restore-Request), which get the full page;
// then JSON when the path is under /api/ (in any case, as routes match
// any case) or Accept prefers application/json; otherwise a full page.
func negotiate(c *fiber.Ctx) format {
	if hx := htmxOf(c); hx.Sent {
		if hx.Partial() {
			return formatFragment
		}
		return formatPage
	}
	if strings.HasPrefix(strings.ToLower(c.Path()), paths.APIPrefix) {
		return formatJSON
	}
	if c.Get(fiber.HeaderAccept) != "" && c.Accepts(fiber.MIMETextHTML, fiber.MIMEApplicationJSON) == fiber.MIMEApplicationJSON {
		return formatJSON
	}
	return formatPage
}

// successEnvelope is the JSON body of every successful API answer; failures
// answer app.ErrorEnvelope.
type successEnvelope struct {
	Success bool `json:"success"`
	Data    any  `json:"data"`
}

// sendJSON answers data in the success envelope.
func sendJSON(c *fiber.Ctx, status int, data any) error {
	return c.Status(status).JSON(successEnvelope{Success: true, Data: data})
}

// view is one answer in its HTML forms: the page's title and content (laid
// out by views.Layout) and the fragment an htmx request gets. Fragment may
// be nil when the route has no partial form; htmx requests then get the
// page content without the layout.
type view struct {
	Title    string
	Page     templ.Component
	Fragment templ.Component
}

// answer is the outcome of a request in every format it may be asked in.
type answer struct {
	// Data is the JSON answer, sent in the success envelope.
	Data any
	// view is the HTML answer.
	view
	// Location is where a browser is sent when the view has nothing for
	// it: a full-page request without a Page, an htmx request without a
	// Fragment or Page.
	Location string
}

// reply is the one way a handler answers in the negotiated format, with
// status: Data as JSON, the fragment (else the page's content) to htmx, the
// page laid out by views.Layout to plain navigation, and a redirect to
// Location where the view has nothing to show. Routes that only ever answer
// JSON use sendJSON; errors go to the error handler.
func (s *Server) reply(c *fiber.Ctx, status int, a answer) error {
	switch negotiate(c) {
	case formatJSON:
		return sendJSON(c, status, a.Data)
	case formatFragment:
		if a.Fragment != nil {
			return renderHTML(c, status, a.Fragment)
		}
		if a.Page != nil {
			return renderHTML(c, status, a.Page)
		}
	default:
		if a.Page != nil {
			return renderHTML(c, status, views.Layout(s.page(c, a.Title), a.Page))
		}
	}
	return redirect(c, a.Location)
}

// renderHTML writes component as the HTML body. It renders with a context
// that keeps the request's values but not its deadline, so an error page
// still renders after a timeout.
//
// An htmx request (boosted or not) always gets 200, with the real status in
// the X-Byoc-Status header: the answer is a re-rendered form or an error
// message meant to be swapped in, and a 4xx would make the browser report a
// failed resource in its console and htmx treat the swap as an error.
func renderHTML(c *fiber.Ctx, status int, component templ.Component) error {
	if isHTMX(c) {
		htmxResponse{Status: status}.set(c)
		status = fiber.StatusOK
	}
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return component.Render(context.WithoutCancel(c.UserContext()), c.Response().BodyWriter())
}

// page builds the layout's props for the request: title, CSRF token, asset
// URLs, the flash messages (taken out of the session) and the signed-in user.
func (s *Server) page(c *fiber.Ctx, title string) views.Page {
	p := views.Page{
		Title:     title,
		CSRFToken: s.csrfToken(c),
		Assets:    s.assets.urls(),
		Flashes:   s.takeFlashes(c),
		Sandbox:   s.opts.Sandbox,
	}
	if a, ok := account(c); ok {
		p.User = &views.User{Email: a.Principal.Email, OrgName: a.OrgName, IsAdmin: a.Principal.IsAdmin()}
	}
	return p
}

// redirect ends a successful browser request by sending it to location: a
// 303 See Other for plain requests (so a POST becomes a GET), and for htmx
// requests an HX-Redirect, which makes the browser load the page in full
// (the new page may carry a new session and CSRF token).
func redirect(c *fiber.Ctx, location string) error {
	if isHTMX(c) {
		htmxResponse{Redirect: location}.set(c)
		return c.SendStatus(fiber.StatusOK)
	}
	return c.Redirect(location, fiber.StatusSeeOther)
}

// changed is reply for a successful change: API clients get data with
// status, htmx gets the fragment (the changed part of the page), and a
// full-page request is sent to location with message as a flash of the
// given kind.
func (s *Server) changed(c *fiber.Ctx, status int, data any, fragment templ.Component, location, kind, message string) error {
	if negotiate(c) == formatPage {
		s.flash(c, kind, message)
	}
	return s.reply(c, status, answer{Data: data, view: view{Fragment: fragment}, Location: location})
}

// bind decodes the request body into dst: JSON (by `json` tags) or an
// urlencoded or multipart form (by `form` tags). A body that cannot be
// decoded, or whose text holds what no field may (see checkText), is an
// EValidation error, never an internal one.
func bind(c *fiber.Ctx, dst any) error {
	ct := strings.ToLower(strings.TrimSpace(strings.Split(c.Get(fiber.HeaderContentType), ";")[0]))
	switch {
	case ct == fiber.MIMEApplicationJSON || strings.HasSuffix(ct, "+json"):
		if err := json.Unmarshal(c.Body(), dst); err != nil {
			var typeErr *json.UnmarshalTypeError
			if errors.As(err, &typeErr) && typeErr.Field != "" {
				return &app.Error{Code: app.EValidation, Message: "Please correct the highlighted fields.",
					Fields: map[string]string{typeErr.Field: "Has the wrong type."}}
			}
			return &app.Error{Code: app.EValidation, Message: "The request body is not valid JSON.", Cause: err}
		}
		return checkText(dst)
	case ct == fiber.MIMEApplicationForm || ct == fiber.MIMEMultipartForm:
		if err := c.BodyParser(dst); err != nil {
			return &app.Error{Code: app.EValidation, Message: "The form could not be read.", Cause: err}
		}
		return checkText(dst)
	case len(c.Body()) == 0:
		return nil
	}
	return app.Errorf(app.EValidation, "Send the request body as JSON (Content-Type: application/json) or as a form.")
}

// bindValues reads the named fields of the request body (JSON, or an
// urlencoded or multipart form) as strings; other keys are ignored, and a
// JSON null or a missing field is left out (reading as ""). A field that is not a string, a body
// that cannot be decoded, or text no field may hold (see checkText) is an
// EValidation error.
func bindValues(c *fiber.Ctx, fields []app.Field) (app.Values, error) {
	out := app.Values{}
	ct := strings.ToLower(strings.TrimSpace(strings.Split(c.Get(fiber.HeaderContentType), ";")[0]))
	switch {
	case ct == fiber.MIMEApplicationJSON || strings.HasSuffix(ct, "+json"):
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(c.Body(), &raw); err != nil {
			return nil, &app.Error{Code: app.EValidation, Message: "The request body is not valid JSON.", Cause: err}
		}
		bad := map[string]string{}
		for _, f := range fields {
			v, ok := raw[f.Name]
			if !ok || string(v) == "null" {
				continue
			}
			var str string
			if json.Unmarshal(v, &str) != nil {
				bad[f.Name] = "Has the wrong type."
				continue
			}
			out[f.Name] = str
		}
		if err := app.ValidationError(bad); err != nil {
			return nil, err
		}
	case ct == fiber.MIMEApplicationForm:
		args := c.Request().PostArgs()
		for _, f := range fields {
			if args.Has(f.Name) {
				out[f.Name] = string(args.Peek(f.Name))
			}
		}
	case ct == fiber.MIMEMultipartForm:
		form, err := c.MultipartForm()
		if err != nil {
			return nil, &app.Error{Code: app.EValidation, Message: "The form could not be read.", Cause: err}
		}
		for _, f := range fields {
			if vs := form.Value[f.Name]; len(vs) > 0 {
				out[f.Name] = vs[0]
			}
		}
	case len(c.Body()) == 0:
		return out, nil
	default:
		return nil, app.Errorf(app.EValidation, "Send the request body as JSON (Content-Type: application/json) or as a form.")
	}
	bad := map[string]string{}
	for name, v := range out {
		if !validText(v) {
			bad[name] = msgBadCharacters
		}
	}
	if err := app.ValidationError(bad); err != nil {
		return nil, err
	}
	return out, nil
}

// msgBadCharacters is the message for text no field may hold.
const msgBadCharacters = "Remove the characters that are not allowed here."

// validText reports whether s may be stored: no NUL byte, valid UTF-8.
func validText(s string) bool { return strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) }

// checkText refuses text that no input field may hold: NUL bytes and
// invalid UTF-8 (which only a form can carry; JSON decoding replaces it).
// PostgreSQL stores neither and HTTP headers cannot carry a NUL, so left in
// they would surface later as internal errors or as a provider that "does
// not answer". Passwords are exempt: they are only ever hashed. dst is a
// pointer to a struct of strings, as bind's callers pass.
func checkText(dst any) error {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	v = v.Elem()
	fields := map[string]string{}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() || f.Type.Kind() != reflect.String {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			name = f.Name
		}
		if name != "password" && !validText(v.Field(i).String()) {
			fields[name] = msgBadCharacters
		}
	}
	return app.ValidationError(fields)
}
