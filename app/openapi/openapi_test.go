package openapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/getkin/kin-openapi/openapi3"

	"byoc/app/openapi"
	"byoc/app/paths"
)

// load parses the served document with kin-openapi.
func load(t *testing.T) *openapi3.T {
	t.Helper()
	raw, err := openapi.JSON()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatalf("the document does not load: %v", err)
	}
	return doc
}

// TestDocumentIsValid validates the document as OpenAPI 3.1, its examples
// against their schemas included.
func TestDocumentIsValid(t *testing.T) {
	doc := load(t)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi is %q, want 3.1.0", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("the document is not valid: %v", err)
	}
}

// A path described in two files is refused, naming both; the others are
// merged into the base document's paths.
func TestAssemble(t *testing.T) {
	base := "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths: {}\n"
	ok := fstest.MapFS{
		"openapi.yaml":   {Data: []byte(base)},
		"paths/a.yaml":   {Data: []byte("/a:\n  get:\n    responses:\n      '200': {description: ok}\n")},
		"paths/b.yaml":   {Data: []byte("/b:\n  get:\n    responses:\n      200: {description: ok}\n")},
		"paths/c.notyml": {Data: []byte("/c: {}\n")},
	}
	raw, err := openapi.Assemble(ok)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]any `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Paths) != 2 || doc.Paths["/a"]["get"].Responses["200"] == nil || doc.Paths["/b"]["get"].Responses["200"] == nil {
		t.Errorf("assembled paths: %s", raw)
	}

	dup := fstest.MapFS{
		"openapi.yaml": {Data: []byte(base)},
		"paths/a.yaml": {Data: []byte("/a: {}\n")},
		"paths/b.yaml": {Data: []byte("/a: {}\n")},
	}
	if _, err := openapi.Assemble(dup); err == nil || !strings.Contains(err.Error(), "paths/a.yaml and paths/b.yaml") {
		t.Errorf("a path in two files: %v", err)
	}
	bad := fstest.MapFS{"openapi.yaml": {Data: []byte(base)}, "paths/a.yaml": {Data: []byte("- a list\n")}}
	if _, err := openapi.Assemble(bad); err == nil {
		t.Error("a file that is not a mapping was accepted")
	}
}

func TestDescribedAndTemplate(t *testing.T) {
	tests := []struct {
		method, route string
		want          bool
	}{
		{"GET", paths.APIStatus, true},
		{"PATCH", paths.TeamMemberRoute, true},
		{"GET", paths.GoogleCallback, false},
		{"GET", paths.Healthz, true},
		{"GET", paths.Metrics, true},
		{"POST", paths.Signup, false},
		{"GET", paths.Dashboard, false},
		{"GET", paths.StaticRoute, false},
	}
	for _, tt := range tests {
		if got := openapi.Described(tt.method, tt.route); got != tt.want {
			t.Errorf("Described(%s %s) = %v, want %v", tt.method, tt.route, got, tt.want)
		}
	}
	if got := openapi.Template(paths.IntegrationVerifyRoute); got != "/api/integrations/{provider}/verify" {
		t.Errorf("Template = %q", got)
	}
}
