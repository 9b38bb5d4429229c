package web_test

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"byoc/app/openapi"
	"byoc/app/paths"
)

// The OpenAPI document (app/openapi) is held to the server in three ways:
// every route the document must describe (openapi.Described) is described
// and nothing else is (TestOpenAPIDescribesEveryRoute), the error codes
// and their statuses are the server's (TestOpenAPIErrorCodes, inside the
// package), and every answer of these handler tests on a described route
// matches its description: env.do checks each one (checkContract).

// contractDoc is the parsed document and a router over its operations.
type contractDoc struct {
	doc      *openapi3.T
	router   routers.Router
	envelope *openapi3.Schema
}

var loadContract = sync.OnceValues(func() (*contractDoc, error) {
	raw, err := openapi.JSON()
	if err != nil {
		return nil, err
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		return nil, err
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &contractDoc{doc: doc, router: router, envelope: doc.Components.Schemas["ErrorEnvelope"].Value}, nil
})

func contract(t testing.TB) *contractDoc {
	t.Helper()
	c, err := loadContract()
	if err != nil {
		t.Fatalf("the OpenAPI document does not load: %v", err)
	}
	return c
}

// checkContract fails the test when an answer does not match the OpenAPI
// document: on a described operation, its status must be one the
// operation lists and its body must match that response's schema; any
// other JSON failure under /api/ (an unknown path, a method the path does
// not take) must still be the error envelope. htmx requests, whose answers
// are HTML fragments for the dashboard, and HEAD requests are left out.
func checkContract(t testing.TB, req *http.Request, res *http.Response, body []byte) {
	t.Helper()
	if req.Method == http.MethodHead || req.Header.Get("HX-Request") != "" {
		return
	}
	c := contract(t)
	// Routes match any letter case and a trailing slash, as the router's do.
	lookup := req.Clone(context.Background())
	p := strings.ToLower(req.URL.Path)
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	lookup.URL.Path, lookup.URL.RawPath = p, ""
	route, params, err := c.router.FindRoute(lookup)
	if err != nil {
		mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
		if mt != "application/json" || res.StatusCode < 400 || !strings.HasPrefix(p, paths.APIPrefix) {
			return
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Errorf("%s %s answered %d with JSON that does not decode: %v", req.Method, req.URL.Path, res.StatusCode, err)
			return
		}
		if err := c.envelope.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
			t.Errorf("%s %s answered %d with a body that is not the error envelope of the OpenAPI document: %v",
				req.Method, req.URL.Path, res.StatusCode, err)
		}
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: lookup, PathParams: params, Route: route},
		Status:                 res.StatusCode,
		Header:                 res.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s %s answered %d, which does not match %s %s in the OpenAPI document (app/openapi/paths): %v",
			req.Method, req.URL.Path, res.StatusCode, route.Method, route.Path, err)
	}
}

// TestOpenAPIDescribesEveryRoute checks that the document describes every
// route of the router that it must (openapi.Described: the routes under
// /api/ but the browser-only ones, and the operations routes), and no
// other operation.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	e := newEnv(t)
	c := contract(t)
	registered := map[string]bool{}
	want := map[string]string{} // "METHOD template" to the router's pattern
	for _, r := range e.srv.Routes() {
		registered[r] = true
		method, route, _ := strings.Cut(r, " ")
		if openapi.Described(method, route) {
			want[method+" "+openapi.Template(route)] = r
		}
	}
	got := map[string]bool{}
	for p, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			got[method+" "+p] = true
		}
	}
	var missing, extra []string
	for op, r := range want {
		if !got[op] {
			missing = append(missing, "route "+r+" is not described in the OpenAPI document: add "+op+
				" to its area's file in app/openapi/paths/ (or, if only a browser uses it, to openapi.BrowserOnly)")
		}
	}
	for op := range got {
		if _, ok := want[op]; !ok {
			extra = append(extra, "the OpenAPI document describes "+op+
				", which is not a route of the router that it describes: remove it from app/openapi/paths/")
		}
	}
	for _, r := range slices.Concat(openapi.BrowserOnly, openapi.OutsideAPI) {
		if !registered[r] {
			extra = append(extra, "app/openapi lists "+r+", which is not a route of the router: remove it from the list")
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, m := range slices.Concat(missing, extra) {
		t.Error(m)
	}
	if len(want) < 20 {
		t.Errorf("only %d routes are described; the router's routes were not read", len(want))
	}
}

// TestOpenAPIServed checks that the server serves the document as JSON,
// to anyone, and that it is the document the tests hold the server to.
func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t)
	res := e.do(request(http.MethodGet, paths.OpenAPI, nil))
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s: %d %q", paths.OpenAPI, res.StatusCode, res.Header.Get("Content-Type"))
	}
	raw, err := openapi.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if res.body != string(raw) {
		t.Error("the served document is not app/openapi's")
	}
	doc := res.json(t)
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v, want 3.1.0", doc["openapi"])
	}
}

// TestContractCheckFails checks that checkContract refuses answers the
// document does not describe: an undocumented status, a body of the wrong
// shape, and an error envelope with a code of another status.
func TestContractCheckFails(t *testing.T) {
	tests := []struct {
		name, method, path string
		status             int
		body               string
	}{
		{"undocumented status", http.MethodGet, paths.APIStatus, http.StatusTeapot, `{"success":false,"error":{"code":"internal","message":"x"}}`},
		{"unknown field", http.MethodDelete, "/api/integrations/vapi", http.StatusOK, `{"success":true,"data":{"provider":"vapi","connected":false,"secret":"x"}}`},
		{"code of another status", http.MethodPost, paths.APIToken, http.StatusUnauthorized, `{"success":false,"error":{"code":"forbidden","message":"x"}}`},
		{"missing field", http.MethodGet, paths.APITeam, http.StatusOK, `{"success":true,"data":{"members":[]}}`},
		{"not the envelope on an unknown path", http.MethodGet, "/api/nothing-here", http.StatusNotFound, `{"error":"not found"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &failRecorder{TB: t}
			res := &http.Response{StatusCode: tt.status, Header: http.Header{"Content-Type": {"application/json"}}}
			checkContract(rec, request(tt.method, tt.path, nil), res, []byte(tt.body))
			if !rec.failed {
				t.Errorf("%s %s %d %s passed the contract check", tt.method, tt.path, tt.status, tt.body)
			}
		})
	}
}

// failRecorder records a failure instead of failing the test.
type failRecorder struct {
	testing.TB
	failed bool
}

func (r *failRecorder) Errorf(string, ...any) { r.failed = true }
