// Package openapi holds the OpenAPI 3.1 description of the JSON API, kept as
// readable YAML (openapi.yaml: what every route shares; paths/*.yaml: one
// file per area of routes) and served as JSON.
//
// Which routes it describes is decided by Described: every route under
// paths.APIPrefix except the browser-only ones, and the operations routes
// outside it. The tests of app/web hold the router to that rule, in both
// directions, and check the handler tests' JSON answers against the
// document.
package openapi

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v4"

	"byoc/app/paths"
)

//go:embed openapi.yaml paths/*.yaml
var files embed.FS

// BrowserOnly are the routes under paths.APIPrefix, as "METHOD pattern",
// that only a browser uses: the document leaves them out. Google sends the
// browser back to its callback, which answers with a redirect to the
// dashboard.
var BrowserOnly = []string{
	"GET " + paths.GoogleCallback,
}

// OutsideAPI are the routes outside paths.APIPrefix, as "METHOD pattern",
// that the document describes: the health, readiness and metrics routes
// that machines call. The pages and forms of the browser (the rest) are
// left out.
var OutsideAPI = []string{
	"GET " + paths.Healthz,
	"GET " + paths.Readyz,
	"GET " + paths.Metrics,
}

// Described reports whether the document describes the route method route
// (a router pattern such as "/api/team/members/:id"): every route under
// paths.APIPrefix except the browser-only ones, and the operations routes.
// HEAD, which every GET route also answers, is not described on its own.
func Described(method, route string) bool {
	key := method + " " + route
	if strings.HasPrefix(route, paths.APIPrefix) {
		return !slices.Contains(BrowserOnly, key)
	}
	return slices.Contains(OutsideAPI, key)
}

// Template is the OpenAPI path template of a router pattern:
// "/api/team/members/:id" becomes "/api/team/members/{id}".
func Template(route string) string {
	parts := strings.Split(route, "/")
	for i, p := range parts {
		if name, ok := strings.CutPrefix(p, ":"); ok {
			parts[i] = "{" + name + "}"
		}
	}
	return strings.Join(parts, "/")
}

// JSON returns the document as JSON. It is assembled once; an error means
// the embedded files do not form a document (a test catches it first).
var JSON = sync.OnceValues(func() ([]byte, error) { return assemble(files) })

// assemble reads openapi.yaml from fsys and adds to its paths the path items
// of every paths/*.yaml file. A path described twice is an error.
func assemble(fsys fs.FS) ([]byte, error) {
	var doc map[string]any
	if err := decodeFile(fsys, "openapi.yaml", &doc); err != nil {
		return nil, err
	}
	all, ok := doc["paths"].(map[string]any)
	if !ok {
		all = map[string]any{}
		doc["paths"] = all
	}
	from := map[string]string{}
	names, err := fs.Glob(fsys, "paths/*.yaml")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		var items map[string]any
		if err := decodeFile(fsys, name, &items); err != nil {
			return nil, err
		}
		for p, item := range items {
			if other, dup := from[p]; dup {
				return nil, fmt.Errorf("openapi: path %s is described in both %s and %s", p, other, name)
			}
			if _, dup := all[p]; dup {
				return nil, fmt.Errorf("openapi: path %s is described in both openapi.yaml and %s", p, name)
			}
			from[p], all[p] = name, item
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	return bytes.TrimSpace(buf.Bytes()), nil
}

// decodeFile decodes the YAML file name into dst, with every mapping's keys
// as strings, as JSON needs them.
func decodeFile(fsys fs.FS, name string, dst *map[string]any) error {
	raw, err := fs.ReadFile(fsys, name)
	if err != nil {
		return fmt.Errorf("openapi: %w", err)
	}
	var v any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("openapi: %s: %w", path.Base(name), err)
	}
	m, ok := stringKeys(v).(map[string]any)
	if !ok {
		return fmt.Errorf("openapi: %s is not a mapping", name)
	}
	*dst = m
	return nil
}

// stringKeys returns v with every mapping's keys turned into strings.
func stringKeys(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = stringKeys(e)
		}
		return t
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[fmt.Sprint(k)] = stringKeys(e)
		}
		return out
	case []any:
		for i, e := range t {
			t[i] = stringKeys(e)
		}
		return t
	}
	return v
}
