package sandbox

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// VapiCredential is a webhook credential as the stand-in stores it: POST,
// GET and DELETE /credential/{id}, kept per API key like the assistants. Only
// the HMAC authentication plan is modelled; its secret is kept for signing
// and never sent back.
type VapiCredential struct {
	ID                 string       `json:"id"`
	OrgID              string       `json:"orgId"`
	Provider           string       `json:"provider"`
	Name               string       `json:"name,omitempty"`
	AuthenticationPlan VapiHMACPlan `json:"authenticationPlan"`
	CreatedAt          time.Time    `json:"createdAt"`
	UpdatedAt          time.Time    `json:"updatedAt"`
}

// VapiHMACPlan is Vapi's HMACAuthenticationPlan. Unset fields take Vapi's
// defaults when the stand-in signs: x-signature, x-timestamp, hex,
// "{timestamp}.{body}", timestamp included.
type VapiHMACPlan struct {
	Type              string `json:"type"`
	SecretKey         string `json:"-"`
	Algorithm         string `json:"algorithm"`
	SignatureHeader   string `json:"signatureHeader,omitempty"`
	TimestampHeader   string `json:"timestampHeader,omitempty"`
	SignaturePrefix   string `json:"signaturePrefix,omitempty"`
	IncludeTimestamp  *bool  `json:"includeTimestamp,omitempty"`
	PayloadFormat     string `json:"payloadFormat,omitempty"`
	SignatureEncoding string `json:"signatureEncoding,omitempty"`
}

var vapiHMACPlanProperties = []string{"type", "secretKey", "algorithm", "signatureHeader", "timestampHeader",
	"signaturePrefix", "includeTimestamp", "payloadFormat", "messageIdHeader", "signatureEncoding", "secretIsBase64"}

// Credentials returns a copy of the credentials created with apiKey, oldest
// first.
func (v *Vapi) Credentials(apiKey string) []VapiCredential {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.credentials[apiKey])
}

func (v *Vapi) createCredential(w http.ResponseWriter, r *http.Request) {
	var raw map[string]json.RawMessage
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&raw); err != nil || raw == nil {
		vapiBadRequest(w, []string{"Unexpected token in JSON body"})
		return
	}
	var problems []string
	for _, k := range sortedKeys(raw) {
		if !slices.Contains([]string{"provider", "name", "authenticationPlan"}, k) {
			problems = append(problems, "property "+k+" should not exist")
		}
	}
	var c VapiCredential
	if json.Unmarshal(raw["provider"], &c.Provider) != nil || c.Provider != "webhook" {
		problems = append(problems, "provider must be one of the following values: webhook")
	}
	if n, ok := raw["name"]; ok {
		if json.Unmarshal(n, &c.Name) != nil || utf8.RuneCountInString(c.Name) < 1 || utf8.RuneCountInString(c.Name) > 40 {
			problems = append(problems, "name must be shorter than or equal to 40 characters")
		}
	}
	plan, planProblems := decodeHMACPlan(raw["authenticationPlan"])
	problems = append(problems, planProblems...)
	if len(problems) > 0 {
		vapiBadRequest(w, problems)
		return
	}
	key := apiKeyOf(r)
	c.ID, c.OrgID, c.AuthenticationPlan = newUUID(), stableUUID(string(v.region), key), plan
	c.CreatedAt = time.Now().UTC().Truncate(time.Millisecond)
	c.UpdatedAt = c.CreatedAt
	v.mu.Lock()
	v.credentials[key] = append(v.credentials[key], c)
	v.mu.Unlock()
	writeJSON(w, http.StatusCreated, c)
}

// decodeHMACPlan validates an authenticationPlan the way Vapi's whitelist
// validation does, for the HMAC plan.
func decodeHMACPlan(raw json.RawMessage) (VapiHMACPlan, []string) {
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil || fields == nil {
		return VapiHMACPlan{}, []string{"authenticationPlan must be an object"}
	}
	var problems []string
	for _, k := range sortedKeys(fields) {
		if !slices.Contains(vapiHMACPlanProperties, k) {
			problems = append(problems, "authenticationPlan.property "+k+" should not exist")
		}
	}
	var p struct {
		VapiHMACPlan
		SecretKey string `json:"secretKey"`
	}
	if json.Unmarshal(raw, &p) != nil {
		return VapiHMACPlan{}, append(problems, "authenticationPlan has a property of the wrong type")
	}
	plan := p.VapiHMACPlan
	plan.SecretKey = p.SecretKey
	if plan.Type != "hmac" {
		problems = append(problems, "authenticationPlan.type must be one of the following values: hmac")
	}
	if plan.SecretKey == "" {
		problems = append(problems, "authenticationPlan.secretKey should not be empty")
	}
	if !slices.Contains([]string{"sha256", "sha512", "sha1"}, plan.Algorithm) {
		problems = append(problems, "authenticationPlan.algorithm must be one of the following values: sha256, sha512, sha1")
	}
	if plan.SignatureEncoding != "" && plan.SignatureEncoding != "hex" && plan.SignatureEncoding != "base64" {
		problems = append(problems, "authenticationPlan.signatureEncoding must be one of the following values: hex, base64")
	}
	return plan, problems
}

func (v *Vapi) getCredential(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	c, ok := v.credential(apiKeyOf(r), r.PathValue("id"))
	v.mu.Unlock()
	if !ok {
		vapiError(w, http.StatusNotFound, "Couldn't Get Credential. `credential` Not Found.")
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (v *Vapi) deleteCredential(w http.ResponseWriter, r *http.Request) {
	key, id := apiKeyOf(r), r.PathValue("id")
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, c := range v.credentials[key] {
		if c.ID == id {
			v.credentials[key] = slices.Delete(v.credentials[key], i, i+1)
			writeJSON(w, http.StatusOK, c)
			return
		}
	}
	vapiError(w, http.StatusNotFound, "Couldn't Delete Credential. `credential` Not Found.")
}

// credential finds a credential of key; the caller holds v.mu.
func (v *Vapi) credential(key, id string) (VapiCredential, bool) {
	for _, c := range v.credentials[key] {
		if c.ID == id {
			return c, true
		}
	}
	return VapiCredential{}, false
}

// serverProblems checks that the credential a server names is one of key's;
// the caller holds v.mu.
func (v *Vapi) serverProblems(key string, s *VapiServer) []string {
	if s == nil || s.CredentialID == "" {
		return nil
	}
	if _, ok := v.credential(key, s.CredentialID); !ok {
		return []string{"server.credentialId must be the id of a credential of this organization"}
	}
	return nil
}

// VapiSigning is how the stand-in's assistant authenticates the events it
// sends: Mode "hmac" (Secret is its credential's HMAC secret), "secret"
// (the inline secret sent as X-Vapi-Secret), or "" (nothing).
type VapiSigning struct {
	Mode, Secret string
}

// Signing tells how the assistant id created with apiKey authenticates its
// events; ok is false when there is no such assistant.
func (v *Vapi) Signing(apiKey, assistantID string) (s VapiSigning, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	i := slices.IndexFunc(v.assistants[apiKey], func(a VapiAssistant) bool { return a.ID == assistantID })
	if i < 0 {
		return VapiSigning{}, false
	}
	srv := v.assistants[apiKey][i].Server
	switch {
	case srv == nil:
		return VapiSigning{}, true
	case srv.CredentialID != "":
		c, _ := v.credential(apiKey, srv.CredentialID)
		return VapiSigning{Mode: "hmac", Secret: c.AuthenticationPlan.SecretKey}, true
	case srv.Secret != "":
		return VapiSigning{Mode: "secret", Secret: srv.Secret}, true
	}
	return VapiSigning{}, true
}

// EventHeaders returns the headers Vapi sends with an event of the
// assistant id created with apiKey whose body is body, sent at at: the
// signature and timestamp its server's credential asks for (the timestamp
// in milliseconds), or X-Vapi-Secret for an inline secret, or none. It
// fails when there is no such assistant or its credential is gone.
func (v *Vapi) EventHeaders(apiKey, assistantID string, body []byte, at time.Time) (http.Header, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	i := slices.IndexFunc(v.assistants[apiKey], func(a VapiAssistant) bool { return a.ID == assistantID })
	if i < 0 {
		return nil, fmt.Errorf("sandbox: no assistant %q for this key", assistantID)
	}
	h := http.Header{}
	srv := v.assistants[apiKey][i].Server
	switch {
	case srv == nil:
	case srv.CredentialID != "":
		c, ok := v.credential(apiKey, srv.CredentialID)
		if !ok {
			return nil, fmt.Errorf("sandbox: the assistant's credential %q is gone", srv.CredentialID)
		}
		signHMAC(h, c.AuthenticationPlan, body, at)
	case srv.Secret != "":
		h.Set("X-Vapi-Secret", srv.Secret)
	}
	return h, nil
}

// signHMAC sets the signature (and timestamp) headers plan asks for.
func signHMAC(h http.Header, plan VapiHMACPlan, body []byte, at time.Time) {
	ts := strconv.FormatInt(at.UnixMilli(), 10)
	withTS := plan.IncludeTimestamp == nil || *plan.IncludeTimestamp
	format := plan.PayloadFormat
	if format == "" {
		format = "{body}"
		if withTS {
			format = "{timestamp}.{body}"
		}
	}
	payload := strings.NewReplacer("{timestamp}", ts, "{body}", string(body)).Replace(format)
	var fn func() hash.Hash
	switch plan.Algorithm {
	case "sha512":
		fn = sha512.New
	case "sha1":
		fn = sha1.New
	default:
		fn = sha256.New
	}
	mac := hmac.New(fn, []byte(plan.SecretKey))
	mac.Write([]byte(payload))
	sum := mac.Sum(nil)
	sig := hex.EncodeToString(sum)
	if plan.SignatureEncoding == "base64" {
		sig = base64.StdEncoding.EncodeToString(sum)
	}
	name := plan.SignatureHeader
	if name == "" {
		name = "x-signature"
	}
	h.Set(name, plan.SignaturePrefix+sig)
	if withTS {
		name = plan.TimestampHeader
		if name == "" {
			name = "x-timestamp"
		}
		h.Set(name, ts)
	}
}

func sortedKeys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
