package web

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"

	"byoc/app/paths"
	"byoc/views"
)

// The static files the layout links.
const (
	cssFile     = "css/app.css"
	htmxFile    = "js/htmx.min.js"
	appJSFile   = "js/app.js"
	faviconFile = "img/favicon.svg"
)

// assets are the embedded static files, read once at startup, each with a
// content hash. Pages link them as /static/<name>?v=<hash>; a request with
// the current hash may be cached for a year, anything else must revalidate.
type assets struct {
	files map[string]asset
}

type asset struct {
	data        []byte
	hash        string
	contentType string
}

func loadAssets(fsys fs.FS) (*assets, error) {
	a := &assets{files: map[string]asset{}}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(path.Base(name), ".") {
			return err
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = "application/octet-stream"
		}
		a.files[name] = asset{data: data, hash: hex.EncodeToString(sum[:6]), contentType: ct}
		return nil
	})
	return a, err
}

func (a *assets) has(name string) bool { _, ok := a.files[name]; return ok }

// url returns the versioned URL of a static file.
func (a *assets) url(name string) string {
	if f, ok := a.files[name]; ok {
		return paths.StaticFile(name) + "?v=" + f.hash
	}
	return paths.StaticFile(name)
}

// urls are the layout's asset URLs.
func (a *assets) urls() views.Assets {
	return views.Assets{CSS: a.url(cssFile), HTMX: a.url(htmxFile), AppJS: a.url(appJSFile), Favicon: a.url(faviconFile)}
}

// static serves GET /static/*.
func (s *Server) static(c *fiber.Ctx) error {
	f, ok := s.assets.files[c.Params("*")]
	if !ok {
		return fiber.ErrNotFound
	}
	etag := `"` + f.hash + `"`
	c.Set(fiber.HeaderETag, etag)
	if c.Query("v") == f.hash {
		c.Set(fiber.HeaderCacheControl, "public, max-age=31536000, immutable")
	} else {
		c.Set(fiber.HeaderCacheControl, "public, no-cache")
	}
	if c.Get(fiber.HeaderIfNoneMatch) == etag {
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Set(fiber.HeaderContentType, f.contentType)
	return c.Send(f.data)
}
