// Package static embeds the files the browser loads: the built stylesheet,
// htmx, the small app.js and the images. The web server serves them under
// /static/ with versioned URLs.
//
// static/css/app.css and static/js/htmx.min.js are build outputs, not
// committed: `make css` writes the first with tailwindcss and copies the
// second from node_modules/htmx.org/dist; every build target in the
// Makefile runs it before `go build`. The embed patterns still match
// when they are missing (css/.gitkeep, js/app.js and img/favicon.svg are
// committed), so `go vet` and `go test` work on a fresh checkout; the
// server then logs a warning and serves pages without styles.
package static

import "embed"

// FS holds css/, js/ and img/.
//
//go:embed all:css js img
var FS embed.FS
