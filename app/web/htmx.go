package web

import (
	"strconv"

	"github.com/gofiber/fiber/v2"
)

// Everything the web layer reads from or tells htmx goes through this file:
// the request headers htmx sends, the response headers that steer its swap,
// and the header that carries the real status of an HTML answer to it.

// Headers of the htmx protocol (https://htmx.org/reference/#headers).
const (
	hxRequest        = "HX-Request"
	hxBoosted        = "HX-Boosted"
	hxHistoryRestore = "HX-History-Restore-Request"
	hxCurrentURL     = "HX-Current-URL"
	hxRedirect       = "HX-Redirect"
	hxRetarget       = "HX-Retarget"
	hxReswap         = "HX-Reswap"
)

// headerStatus carries the real status of an HTML answer to htmx, which is
// sent as 200 (see renderHTML).
const headerStatus = "X-Byoc-Status"

// htmxRequest is what htmx says about a request.
type htmxRequest struct {
	// Sent: htmx sent the request (boosted or not).
	Sent bool
	// Boosted: a boosted link or form, which wants the whole page.
	Boosted bool
	// HistoryRestore: htmx restores a page it has no copy of, which wants
	// the whole page too.
	HistoryRestore bool
}

// htmxOf reads the htmx request headers of c.
func htmxOf(c *fiber.Ctx) htmxRequest {
	return htmxRequest{
		Sent:           c.Get(hxRequest) == "true",
		Boosted:        c.Get(hxBoosted) == "true",
		HistoryRestore: c.Get(hxHistoryRestore) == "true",
	}
}

// Partial reports whether the request wants a fragment to swap in rather
// than a whole page.
func (r htmxRequest) Partial() bool { return r.Sent && !r.Boosted && !r.HistoryRestore }

// isHTMX reports whether htmx sent the request (boosted or not).
func isHTMX(c *fiber.Ctx) bool { return htmxOf(c).Sent }

// htmxResponse steers what htmx does with an answer; empty fields send no
// header.
type htmxResponse struct {
	// Redirect makes the browser load this location in full.
	Redirect string
	// Retarget swaps the answer into this element (a CSS selector) instead
	// of the request's target.
	Retarget string
	// Reswap replaces the request's swap style, such as "innerHTML".
	Reswap string
	// Status is the answer's real status, sent in headerStatus; 0 sends
	// none.
	Status int
}

// set writes r's headers into c's response.
func (r htmxResponse) set(c *fiber.Ctx) {
	for _, h := range [...]struct{ name, value string }{
		{hxRedirect, r.Redirect}, {hxRetarget, r.Retarget}, {hxReswap, r.Reswap},
	} {
		if h.value != "" {
			c.Set(h.name, h.value)
		}
	}
	if r.Status != 0 {
		c.Set(headerStatus, strconv.Itoa(r.Status))
	}
}
