package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"byoc/app"
)

// Vapi stands in for Vapi's REST API in one region: GET (with ?limit=) and
// POST /assistant, GET, PATCH and DELETE /assistant/{id}, POST /credential
// and GET and DELETE /credential/{id} (webhook credentials with an HMAC
// plan, see vapi_credentials.go), with `Authorization: Bearer <private
// key>`. PATCH validates its body as POST does and replaces each top-level
// property it names as a whole: a server object without a secret clears
// the stored secret. An assistant's server.credentialId must name a
// credential of the same key.
//
// Assistants are kept per API key, so each org's key sees only its own. A
// key belongs to the EU region when it contains "eu" and to the US region
// otherwise; a key from the other region is refused with 401, as Vapi does.
// A key containing "echo" reads (GET) as any valid key, but every write is
// refused with 400 and Echo's message.
// Errors have Vapi's (NestJS) shape: {"message", "error", "statusCode"}, where
// a 400 carries a list of messages.
type Vapi struct {
	region app.VapiRegion
	mux    *http.ServeMux

	mu          sync.Mutex
	assistants  map[string][]VapiAssistant  // by API key, oldest first
	credentials map[string][]VapiCredential // by API key, oldest first
}

// VapiAssistant is an assistant as the stand-in stores and returns it.
type VapiAssistant struct {
	ID             string          `json:"id"`
	OrgID          string          `json:"orgId"`
	Name           string          `json:"name,omitempty"`
	FirstMessage   string          `json:"firstMessage,omitempty"`
	Model          json.RawMessage `json:"model,omitempty"`
	Voice          json.RawMessage `json:"voice,omitempty"`
	Server         *VapiServer     `json:"server,omitempty"`
	ServerMessages []string        `json:"serverMessages,omitempty"`
	CreatedAt      time.Time       `json:"createdAt"`
	UpdatedAt      time.Time       `json:"updatedAt"`
}

// VapiServer is where Vapi sends an assistant's events. Secret is kept for
// test assertions but never sent back; CredentialID names the credential
// Vapi authenticates the events with.
type VapiServer struct {
	URL            string `json:"url"`
	TimeoutSeconds int    `json:"timeoutSeconds,omitempty"`
	CredentialID   string `json:"credentialId,omitempty"`
	Secret         string `json:"-"`
}

// NewVapi returns an empty Vapi stand-in for region.
func NewVapi(region app.VapiRegion) *Vapi {
	v := &Vapi{region: region, assistants: map[string][]VapiAssistant{}, credentials: map[string][]VapiCredential{}}
	v.mux = http.NewServeMux()
	v.mux.HandleFunc("GET /assistant", v.list)
	v.mux.HandleFunc("POST /assistant", v.create)
	v.mux.HandleFunc("GET /assistant/{id}", v.get)
	v.mux.HandleFunc("PATCH /assistant/{id}", v.update)
	v.mux.HandleFunc("DELETE /assistant/{id}", v.delete)
	v.mux.HandleFunc("POST /credential", v.createCredential)
	v.mux.HandleFunc("GET /credential/{id}", v.getCredential)
	v.mux.HandleFunc("DELETE /credential/{id}", v.deleteCredential)
	v.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		vapiError(w, http.StatusNotFound, fmt.Sprintf("Cannot %s %s", r.Method, r.URL.Path))
	})
	return v
}

// Assistants returns a copy of the assistants created with apiKey, oldest
// first.
func (v *Vapi) Assistants(apiKey string) []VapiAssistant {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.assistants[apiKey])
}

// ServeHTTP checks the key, then serves the assistant routes.
func (v *Vapi) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := apiKeyOf(r)
	if !holdIfSlow(r, key) {
		return
	}
	switch {
	case has(key, "down"):
		vapiError(w, http.StatusServiceUnavailable, "Service Unavailable")
		return
	case has(key, "ratelimit"):
		vapiError(w, http.StatusTooManyRequests, "ThrottlerException: Too Many Requests")
		return
	case key == "" || has(key, "invalid") || v.keyRegion(key) != v.region:
		vapiError(w, http.StatusUnauthorized,
			"Invalid Key. Hot tip, you may be using the private key instead of the public key, or vice versa.")
		return
	case has(key, "echo") && r.Method != http.MethodGet:
		vapiBadRequest(w, []string{Echo(key)})
		return
	}
	v.mux.ServeHTTP(w, r)
}

func (v *Vapi) keyRegion(key string) app.VapiRegion {
	if has(key, "eu") {
		return app.VapiEU
	}
	return app.VapiUS
}

// apiKeyOf returns the bearer token of r, or "" when there is none.
func apiKeyOf(r *http.Request) string {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(key)
}

func (v *Vapi) list(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	all := slices.Clone(v.assistants[apiKeyOf(r)])
	v.mu.Unlock()
	// Vapi lists newest first and answers a bare array, [] when empty.
	slices.Reverse(all)
	if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n >= 0 && n < len(all) {
		all = all[:n]
	}
	if all == nil {
		all = []VapiAssistant{}
	}
	writeJSON(w, http.StatusOK, all)
}

func (v *Vapi) get(w http.ResponseWriter, r *http.Request) {
	if a, ok := v.find(apiKeyOf(r), r.PathValue("id")); ok {
		writeJSON(w, http.StatusOK, a)
		return
	}
	vapiError(w, http.StatusNotFound, "Couldn't Get Assistant. `assistant` Not Found.")
}

func (v *Vapi) delete(w http.ResponseWriter, r *http.Request) {
	key, id := apiKeyOf(r), r.PathValue("id")
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, a := range v.assistants[key] {
		if a.ID == id {
			v.assistants[key] = slices.Delete(v.assistants[key], i, i+1)
			writeJSON(w, http.StatusOK, a)
			return
		}
	}
	vapiError(w, http.StatusNotFound, "Couldn't Delete Assistant. `assistant` Not Found.")
}

func (v *Vapi) find(key, id string) (VapiAssistant, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, a := range v.assistants[key] {
		if a.ID == id {
			return a, true
		}
	}
	return VapiAssistant{}, false
}

// vapiCreateBody is the subset of Vapi's CreateAssistantDTO the stand-in
// understands. Other known properties are accepted and ignored; unknown ones
// are refused, as Vapi's whitelist validation does.
type vapiCreateBody struct {
	Name           *string         `json:"name"`
	FirstMessage   *string         `json:"firstMessage"`
	Model          json.RawMessage `json:"model"`
	Voice          json.RawMessage `json:"voice"`
	Server         json.RawMessage `json:"server"`
	ServerMessages []string        `json:"serverMessages"`
}

var vapiKnownProperties = []string{
	"name", "firstMessage", "firstMessageMode", "model", "voice", "transcriber", "server", "serverMessages",
	"clientMessages", "serverUrl", "serverUrlSecret", "endCallMessage", "endCallPhrases", "voicemailMessage",
	"metadata", "maxDurationSeconds", "silenceTimeoutSeconds", "backgroundSound", "analysisPlan", "artifactPlan",
	"startSpeakingPlan", "stopSpeakingPlan", "hooks", "credentials",
}

// vapiServerMessageTypes are the serverMessages values the stand-in accepts.
var vapiServerMessageTypes = []string{
	"assistant.started", "conversation-update", "end-of-call-report", "function-call", "hang",
	"language-changed", "language-change-detected", "model-output", "phone-call-control", "speech-update",
	"status-update", "transcript", "transcript[transcriptType=\"final\"]", "tool-calls", "transfer-destination-request",
	"transfer-update", "user-interrupted", "voice-input", "chat.created", "chat.deleted", "session.created",
	"session.updated", "session.deleted", "knowledge-base-request", "assistant-request",
}

func (v *Vapi) create(w http.ResponseWriter, r *http.Request) {
	body, problems, ok := decodeAssistantBody(w, r)
	if !ok {
		return
	}
	a := VapiAssistant{ID: newUUID(), OrgID: stableUUID(string(v.region), apiKeyOf(r))}
	problems = append(problems, body.apply(&a)...)
	key := apiKeyOf(r)
	v.mu.Lock()
	defer v.mu.Unlock()
	problems = append(problems, v.serverProblems(key, a.Server)...)
	if len(problems) > 0 {
		vapiBadRequest(w, problems)
		return
	}

	a.CreatedAt = time.Now().UTC().Truncate(time.Millisecond)
	a.UpdatedAt = a.CreatedAt
	v.assistants[key] = append(v.assistants[key], a)
	writeJSON(w, http.StatusCreated, a)
}

// update serves PATCH /assistant/{id}: the body is validated first (400), as
// Vapi's validation pipe runs before the handler, then an unknown id is 404.
func (v *Vapi) update(w http.ResponseWriter, r *http.Request) {
	body, problems, ok := decodeAssistantBody(w, r)
	if !ok {
		return
	}
	key, id := apiKeyOf(r), r.PathValue("id")
	v.mu.Lock()
	defer v.mu.Unlock()
	i := slices.IndexFunc(v.assistants[key], func(a VapiAssistant) bool { return a.ID == id })
	var a VapiAssistant
	if i >= 0 {
		a = v.assistants[key][i]
	}
	problems = append(problems, body.apply(&a)...)
	if body.Server != nil {
		problems = append(problems, v.serverProblems(key, a.Server)...)
	}
	if len(problems) > 0 {
		vapiBadRequest(w, problems)
		return
	}
	if i < 0 {
		vapiError(w, http.StatusNotFound, "Couldn't Update Assistant. `assistant` Not Found.")
		return
	}
	a.UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
	v.assistants[key][i] = a
	writeJSON(w, http.StatusOK, a)
}

// decodeAssistantBody reads the JSON body of a POST or PATCH and lists its
// unknown properties. It answers 400 itself and returns ok false when the
// body is not a JSON object of the expected shape.
func decodeAssistantBody(w http.ResponseWriter, r *http.Request) (body vapiCreateBody, problems []string, ok bool) {
	var raw map[string]json.RawMessage
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&raw); err != nil || raw == nil {
		vapiBadRequest(w, []string{"Unexpected token in JSON body"})
		return body, nil, false
	}
	names := make([]string, 0, len(raw))
	for k := range raw {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !slices.Contains(vapiKnownProperties, k) {
			problems = append(problems, "property "+k+" should not exist")
		}
	}
	buf, _ := json.Marshal(raw)
	if err := json.Unmarshal(buf, &body); err != nil {
		vapiBadRequest(w, append(problems, "body has a property of the wrong type"))
		return body, nil, false
	}
	return body, problems, true
}

// apply validates the properties body names and sets them on a, each
// replacing the old value as a whole. It returns the validation problems.
func (body vapiCreateBody) apply(a *VapiAssistant) []string {
	var problems []string
	if body.Name != nil {
		a.Name = *body.Name
		if utf8.RuneCountInString(a.Name) > 40 {
			problems = append(problems, "name must be shorter than or equal to 40 characters")
		}
	}
	if body.FirstMessage != nil {
		a.FirstMessage = *body.FirstMessage
	}
	if body.Model != nil {
		var m struct {
			Provider string `json:"provider"`
			Model    string `json:"model"`
			Messages []struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"messages"`
		}
		if err := json.Unmarshal(body.Model, &m); err != nil {
			problems = append(problems, "model must be an object")
		} else {
			if m.Provider == "" {
				problems = append(problems, "model.provider should not be empty")
			}
			if m.Model == "" {
				problems = append(problems, "model.model must be a string")
			}
			for i, msg := range m.Messages {
				if !slices.Contains([]string{"system", "user", "assistant", "tool", "function"}, msg.Role) {
					problems = append(problems, fmt.Sprintf("model.messages.%d.role must be one of the following values: assistant, function, user, system, tool", i))
				}
			}
		}
		a.Model = body.Model
	}
	if body.Voice != nil {
		var vo struct {
			Provider string `json:"provider"`
		}
		if err := json.Unmarshal(body.Voice, &vo); err != nil || vo.Provider == "" {
			problems = append(problems, "voice.provider should not be empty")
		}
		a.Voice = body.Voice
	}
	if body.Server != nil {
		var s struct {
			URL            string `json:"url"`
			Secret         string `json:"secret"`
			CredentialID   string `json:"credentialId"`
			TimeoutSeconds int    `json:"timeoutSeconds"`
		}
		if err := json.Unmarshal(body.Server, &s); err != nil {
			problems = append(problems, "server must be an object")
		} else {
			if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				problems = append(problems, "server.url must be a URL address")
			}
			if s.TimeoutSeconds != 0 && (s.TimeoutSeconds < 1 || s.TimeoutSeconds > 300) {
				problems = append(problems, "server.timeoutSeconds must not be greater than 300")
			}
			a.Server = &VapiServer{URL: s.URL, Secret: s.Secret, CredentialID: s.CredentialID, TimeoutSeconds: s.TimeoutSeconds}
			if a.Server.TimeoutSeconds == 0 {
				a.Server.TimeoutSeconds = 20
			}
		}
	}
	if body.ServerMessages != nil {
		for _, m := range body.ServerMessages {
			if !slices.Contains(vapiServerMessageTypes, m) {
				problems = append(problems, "each value in serverMessages must be one of the following values: "+
					strings.Join(vapiServerMessageTypes, ", "))
				break
			}
		}
		a.ServerMessages = body.ServerMessages
	}
	return problems
}

// vapiError answers Vapi's error shape with a single message.
func vapiError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"message": msg, "error": http.StatusText(status), "statusCode": status})
}

// vapiBadRequest answers Vapi's validation error: a list of messages.
func vapiBadRequest(w http.ResponseWriter, msgs []string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"message": msgs, "error": "Bad Request", "statusCode": http.StatusBadRequest})
}
