package web

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"byoc/app/openapi"
)

// TestOpenAPIErrorCodes checks the document's error codes against the
// server's: the ErrorCode schema lists exactly the codes the server maps to
// a status, and each status's error response (components.responses.ErrorNNN)
// allows exactly the codes of that status.
func TestOpenAPIErrorCodes(t *testing.T) {
	raw, err := openapi.JSON()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, v := range doc.Components.Schemas["ErrorCode"].Value.Enum {
		documented = append(documented, fmt.Sprint(v))
	}
	var served []string
	for code := range statusByCode {
		served = append(served, code)
	}
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("the document's ErrorCode lists %v; the server answers %v", documented, served)
	}

	byStatus := map[int][]string{}
	for code, status := range statusByCode {
		byStatus[status] = append(byStatus[status], code)
	}
	for name, ref := range doc.Components.Responses {
		digits, ok := strings.CutPrefix(name, "Error")
		if !ok {
			continue
		}
		status, err := strconv.Atoi(digits)
		if err != nil {
			t.Errorf("response %s: not Error followed by a status", name)
			continue
		}
		var allowed []string
		schema := ref.Value.Content.Get("application/json").Schema.Value
		for _, s := range schema.AllOf {
			// The envelope's own code (a $ref to ErrorCode) allows every
			// code; the response narrows it next to it.
			if e := s.Value.Properties["error"]; s.Ref == "" && e != nil {
				for _, v := range e.Value.Properties["code"].Value.Enum {
					allowed = append(allowed, fmt.Sprint(v))
				}
			}
		}
		want := byStatus[status]
		slices.Sort(allowed)
		slices.Sort(want)
		if !slices.Equal(allowed, want) {
			t.Errorf("response %s allows the codes %v; the server answers %d with %v", name, allowed, status, want)
		}
		delete(byStatus, status)
	}
	for status, codes := range byStatus {
		t.Errorf("the document has no response Error%d for the codes %v", status, codes)
	}
}
