package web

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"byoc/app"
	"byoc/views"
)

// statusByCode maps each error code to its one HTTP status.
var statusByCode = map[string]int{
	app.EValidation:          http.StatusBadRequest,
	app.EUnauthorized:        http.StatusUnauthorized,
	app.EInvalidCredentials:  http.StatusUnauthorized,
	app.EInvalidSignature:    http.StatusUnauthorized,
	app.EForbidden:           http.StatusForbidden,
	app.ENotFound:            http.StatusNotFound,
	app.ENotConfigured:       http.StatusNotFound,
	app.EUnknownProvider:     http.StatusNotFound,
	app.EUnknownAssistant:    http.StatusNotFound,
	app.EMethodNotAllowed:    http.StatusMethodNotAllowed,
	app.EEmailTaken:          http.StatusConflict,
	app.ELastAdmin:           http.StatusConflict,
	app.EConflict:            http.StatusConflict,
	app.EPayloadTooLarge:     http.StatusRequestEntityTooLarge,
	app.EVerificationFailed:  http.StatusUnprocessableEntity,
	app.ERateLimited:         http.StatusTooManyRequests,
	app.EProviderUnavailable: http.StatusBadGateway,
	app.EUnavailable:         http.StatusServiceUnavailable,
	app.EInternal:            http.StatusInternalServerError,
}

// statusOf returns the HTTP status of an error code (500 for unknown codes).
func statusOf(code string) int {
	if s, ok := statusByCode[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// toAppError turns any error into a domain error. A domain error in err's
// chain wins; otherwise Fiber's own errors (no route, wrong method, body too
// large, unreadable request) become one by their status, a passed deadline
// EUnavailable, and anything else EInternal with the original as its cause.
func toAppError(err error) *app.Error {
	if !errors.As(err, new(*app.Error)) {
		if e := transportError(err); e != nil {
			return e
		}
	}
	return app.AsError(err)
}

// transportError is the domain error for one of Fiber's own errors or a
// passed deadline, and nil for any other error.
func transportError(err error) *app.Error {
	var fe *fiber.Error
	if errors.As(err, &fe) {
		switch fe.Code {
		case fiber.StatusNotFound:
			return &app.Error{Code: app.ENotFound, Message: "There is nothing at this address.", Cause: err}
		case fiber.StatusMethodNotAllowed:
			return &app.Error{Code: app.EMethodNotAllowed, Message: "This address does not accept that method.", Cause: err}
		case fiber.StatusRequestEntityTooLarge, fiber.StatusRequestHeaderFieldsTooLarge:
			return &app.Error{Code: app.EPayloadTooLarge, Message: "The request is too large.", Cause: err}
		case fiber.StatusTooManyRequests:
			return &app.Error{Code: app.ERateLimited, Message: "Too many requests. Please wait a moment and try again.", Cause: err}
		case fiber.StatusRequestTimeout, fiber.StatusServiceUnavailable:
			return &app.Error{Code: app.EUnavailable, Message: "The server could not finish the request in time. Please try again.", Cause: err}
		}
		if fe.Code >= 400 && fe.Code < 500 {
			return &app.Error{Code: app.EValidation, Message: "The request could not be read.", Cause: err}
		}
		return app.Internal(err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &app.Error{Code: app.EUnavailable, Message: "The server could not finish the request in time. Please try again.", Cause: err}
	}
	return nil
}

// unreadRequestPath returns the path of a request whose headers were too
// large for fasthttp to read, from the start of the read buffer that
// fasthttp quotes in its error ("... contents: \"GET /api/x HTTP/1.1\r\n...",
// at most 200 bytes: a longer path is cut short, which still tells /api/).
// It reports false for any other error, or when the quoted text holds no
// request line with a path.
func unreadRequestPath(err error) (string, bool) {
	if !errors.As(err, new(*fasthttp.ErrSmallBuffer)) {
		return "", false
	}
	_, quoted, ok := strings.Cut(err.Error(), "contents: ")
	if !ok {
		return "", false
	}
	quoted, qerr := strconv.QuotedPrefix(quoted)
	if qerr != nil {
		return "", false
	}
	contents, qerr := strconv.Unquote(quoted)
	if qerr != nil {
		return "", false
	}
	line, _, _ := strings.Cut(strings.TrimLeft(contents, "\r\n"), "\n")
	fields := strings.Fields(line)
	if len(fields) < 2 || !strings.HasPrefix(fields[1], "/") {
		return "", false
	}
	path, _, _ := strings.Cut(fields[1], "?")
	return path, true
}

// nothingRead reports whether err is fasthttp's read timeout on a
// connection that sent no byte of its first request: fasthttp passes the
// bare network error then, and wraps it ("error when reading request
// headers") once part of a request arrived.
func nothingRead(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && error(op) == err && op.Op == "read" && op.Timeout()
}

// titles are the headings of error pages by status.
var titles = map[int]string{
	http.StatusBadRequest:            "Please check your input",
	http.StatusUnauthorized:          "Please sign in",
	http.StatusForbidden:             "Not allowed",
	http.StatusNotFound:              "Page not found",
	http.StatusMethodNotAllowed:      "Not allowed",
	http.StatusConflict:              "Already exists",
	http.StatusRequestEntityTooLarge: "Too large",
	http.StatusUnprocessableEntity:   "Verification failed",
	http.StatusTooManyRequests:       "Slow down",
	http.StatusBadGateway:            "Provider unavailable",
	http.StatusServiceUnavailable:    "Temporarily unavailable",
}

// landOnErrorAt makes the error handler answer a failure of this request by
// sending the browser to landing with the error's message as a flash: for
// top-level navigations that have no page of their own to show it on (the
// Google sign-in's steps).
func landOnErrorAt(c *fiber.Ctx, landing string) { c.Locals(localErrorLanding, landing) }

// handleError is the one error handler: it maps the error's code to a
// status, logs server errors with their cause (client errors are in the
// access log), and answers in the negotiated format: the JSON envelope, an
// error fragment swapped into the flash region, or an error page. Users
// see the error's safe message, never its cause.
//
// Our own faults are logged at error level. A provider that cannot be used
// (502 provider_unavailable) is logged at warning level: it is the
// provider's fault, and any tenant can bring it about with a key that
// makes the provider fail; the message names the provider.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	e := toAppError(ownStop(c.UserContext(), err))
	status := statusOf(e.Code)
	id, _ := c.Locals(localRequestID).(string)
	switch {
	case e.Code == app.EProviderUnavailable:
		s.log.Warn("provider unavailable", "request_id", id, "method", c.Method(), "path", c.Path(),
			"status", status, "code", e.Code, "err", err.Error())
	case status >= 500:
		s.log.Error("request failed", "request_id", id, "method", c.Method(), "path", c.Path(),
			"status", status, "code", e.Code, "err", err.Error())
	}
	message := app.ErrorMessage(e)

	// Errors raised before the middleware ran (body too large) still get
	// the standard headers; a half-written answer is dropped.
	s.setHeaders(c)
	c.Response().ResetBody()

	if landing, ok := c.Locals(localErrorLanding).(string); ok {
		s.flash(c, views.FlashError, message)
		return c.Redirect(landing, fiber.StatusSeeOther)
	}
	if status == http.StatusUnauthorized && e.Code == app.EUnauthorized && isHTMX(c) {
		// The page's session ended: the whole page goes to the sign-in
		// page, which comes back here afterwards. No page is rendered
		// here, so the sign-in page's flash stays for it.
		htmxResponse{Redirect: loginURL(htmxReturnPath(c))}.set(c)
		return renderHTML(c, status, views.ErrorAlert(views.ErrorView{Status: status, Message: message, RequestID: id}))
	}
	switch negotiate(c) {
	case formatJSON:
		return c.Status(status).JSON(app.ErrorEnvelope{Error: app.ErrorBody{Code: e.Code, Message: message, Fields: e.Fields}})
	case formatFragment:
		htmxResponse{Retarget: "#flashes", Reswap: "innerHTML"}.set(c)
		return renderHTML(c, status, views.ErrorAlert(views.ErrorView{Status: status, Message: message, RequestID: id}))
	}
	title, ok := titles[status]
	if !ok {
		title = "Something went wrong"
	}
	ev := views.ErrorView{Status: status, Title: title, Message: message, RequestID: id}
	return renderHTML(c, status, views.Layout(s.page(c, title), views.ErrorPage(ev)))
}
