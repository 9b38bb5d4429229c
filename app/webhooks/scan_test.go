package webhooks

import (
	"encoding/json"
	"strings"
	"testing"
)

// scanCases are bodies on which scan must agree with encoding/json: valid
// or not as json.Valid says, and when it says it decided alone (exact), the
// type and assistant id parsePayload reads.
var scanCases = []struct {
	name  string
	body  string
	exact bool // whether scan must decide alone
}{
	{"conversation update", `{"message":{"type":"conversation-update","call":{"id":"c","assistantId":"a-1","orgId":"o"},"messages":[{"role":"user","message":"hi","time":1.5e3}]}}`, true},
	{"assistant only", `{"message":{"type":"hang","assistant":{"id":"a-2"}}}`, true},
	{"call without assistant id", `{"message":{"type":"hang","call":{"id":"c"},"assistant":{"id":"a-3"}}}`, true},
	{"call assistant id empty", `{"message":{"type":"hang","call":{"assistantId":""},"assistant":{"id":"a-4"}}}`, true},
	{"assistant id a number", `{"message":{"type":"hang","call":{"assistantId":7},"assistant":{"id":"a-5"}}}`, true},
	{"assistant id null", `{"message":{"type":"hang","call":{"assistantId":null}}}`, true},
	{"type not a string", `{"message":{"type":["x"],"call":{"assistantId":"a"}}}`, true},
	{"message null", `{"message":null}`, true},
	{"message a string", `{"message":"x"}`, true},
	{"call an array", `{"message":{"type":"t","call":[{"assistantId":"a"}]}}`, true},
	{"nested message ignored", `{"other":{"message":{"type":"t","call":{"assistantId":"a"}}},"message":{"type":"u"}}`, true},
	{"top-level array", `[{"message":{"type":"t"}}]`, true},
	{"top-level null", ` null `, true},
	{"whitespace everywhere", " \t\r\n{ \"message\" : { \"type\" : \"t\" , \"call\" : { \"assistantId\" : \"a\" } } } \n", true},
	{"numbers", `{"message":{"type":"t","n":[0,-0,1,-1.5,1e9,1E+9,2e-3,0.25,123456789012345678901234567890]}}`, true},
	{"literals", `{"message":{"type":"t","x":[true,false,null]}}`, true},
	{"unicode elsewhere", `{"message":{"type":"t","text":"héllo \u00e9 \ud83d\ude00","call":{"assistantId":"a"}}}`, true},

	{"key in another case", `{"message":{"Type":"t","call":{"assistantId":"a"}}}`, false},
	{"message in capitals", `{"MESSAGE":{"type":"t"}}`, false},
	{"assistant id in lower case", `{"message":{"type":"t","call":{"assistantid":"a"}}}`, false},
	{"escaped key", `{"message":{"typ\u0065":"t"}}`, false},
	{"non-ASCII key that folds", `{"meſſage":{"type":"t"}}`, false},
	{"repeated type", `{"message":{"type":"hang","type":"tool-calls","call":{"assistantId":"a"}}}`, false},
	{"repeated message", `{"message":{"type":"t","call":{"assistantId":"a"}},"message":{"type":"u"}}`, false},
	{"repeated call", `{"message":{"call":{"assistantId":"a"},"call":{"id":"c"}}}`, false},
	{"escaped value", `{"message":{"type":"t","call":{"assistantId":"\u0061"}}}`, false},
	{"non-ASCII value", `{"message":{"type":"t\u00e9","call":{"assistantId":"é"}}}`, false},
	{"invalid UTF-8 value", "{\"message\":{\"type\":\"t\",\"call\":{\"assistantId\":\"\xff\"}}}", false},

	{"empty", ``, true},
	{"only whitespace", "  ", true},
	{"truncated", `{"message":`, true},
	{"trailing comma", `{"message":{"type":"t",}}`, true},
	{"trailing garbage", `{"message":{}} x`, true},
	{"two values", `{} {}`, true},
	{"single quotes", `{'message':{}}`, true},
	{"control character in a string", "{\"message\":{\"type\":\"a\x01b\"}}", true},
	{"bad escape", `{"message":{"type":"\x"}}`, true},
	{"short unicode escape", `{"message":{"type":"\u12"}}`, true},
	{"leading zero", `{"n":01}`, true},
	{"bare minus", `{"n":-}`, true},
	{"dot without digits", `{"n":1.}`, true},
	{"exponent without digits", `{"n":1e}`, true},
	{"plus sign", `{"n":+1}`, true},
	{"NaN", `{"n":NaN}`, true},
	{"tru", `{"b":tru}`, true},
	{"missing colon", `{"message" {}}`, true},
	{"non-string key", `{1:2}`, true},
	{"unclosed array", `[1,2`, true},
	{"unclosed string", `{"message":"abc`, true},
	{"deepest allowed", strings.Repeat("[", maxNestingDepth) + strings.Repeat("]", maxNestingDepth), true},
	{"one level too deep", strings.Repeat("[", maxNestingDepth+1) + strings.Repeat("]", maxNestingDepth+1), true},
	{"deep objects", strings.Repeat(`{"a":`, maxNestingDepth) + "1" + strings.Repeat("}", maxNestingDepth), true},
	{"objects one level too deep", strings.Repeat(`{"a":`, maxNestingDepth+1) + "1" + strings.Repeat("}", maxNestingDepth+1), true},
}

func TestScanAgreesWithEncodingJSON(t *testing.T) {
	for _, tc := range scanCases {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			r, err := scan(body)
			checkScan(t, body, r, err)
			if err == nil && r.exact != tc.exact {
				t.Fatalf("exact = %v, want %v", r.exact, tc.exact)
			}
		})
	}
}

// checkScan fails when scan disagrees with encoding/json on body.
func checkScan(t *testing.T, body []byte, r route, err error) {
	t.Helper()
	if valid := json.Valid(body); valid != (err == nil) {
		t.Fatalf("json.Valid = %v, scan error = %v", valid, err)
	}
	if err != nil || !r.exact {
		return
	}
	m, perr := parsePayload(body)
	if perr != nil {
		t.Fatalf("parsePayload: %v", perr)
	}
	if m.Type != r.typ || m.AssistantID != r.assistantID {
		t.Fatalf("scan read type %q assistant %q; parsePayload %q %q", r.typ, r.assistantID, m.Type, m.AssistantID)
	}
}

// readPayload answers what parsePayload answers, as far as the handler reads
// it: every field for the recorded types, type and assistant for the rest.
func TestReadPayloadMatchesParsePayload(t *testing.T) {
	bodies := []string{
		`{"message":{"type":"status-update","status":"ringing","timestamp":1714000000000,"call":{"id":"c1","assistantId":"a"}}}`,
		`{"message":{"type":"end-of-call-report","endedReason":"hangup","durationSeconds":12,"call":{"id":"c1","assistantId":"a"}}}`,
		`{"message":{"type":"tool-calls","toolCallList":[{"id":"t1","function":{"name":"send_sms","arguments":{}}}],"assistant":{"id":"a"}}}`,
		`{"message":{"type":"hang","type":"tool-calls","toolCallList":[{"id":"t1","function":{"name":"x"}}],"call":{"assistantId":"a"}}}`,
		`{"message":{"Type":"status-update","call":{"id":"c","assistantId":"a"},"timestamp":5}}`,
		`{"message":{"type":"speech-update","call":{"id":"c","assistantId":"a"}}}`,
	}
	for _, b := range bodies {
		got, err := readPayload([]byte(b))
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		want, _ := parsePayload([]byte(b))
		switch want.Type {
		case TypeStatusUpdate, TypeEndOfCallReport, TypeToolCalls:
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			if string(gj) != string(wj) {
				t.Errorf("%s:\n got %s\nwant %s", b, gj, wj)
			}
		default:
			if got.Type != want.Type || got.AssistantID != want.AssistantID {
				t.Errorf("%s: got %q %q, want %q %q", b, got.Type, got.AssistantID, want.Type, want.AssistantID)
			}
		}
	}
}

func FuzzScan(f *testing.F) {
	for _, tc := range scanCases {
		if len(tc.body) < 1000 {
			f.Add([]byte(tc.body))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := scan(body)
		checkScan(t, body, r, err)
	})
}

// The answers encoded once say exactly what encoding them each time would.
func TestConstantAnswersEncodeAsTheirBody(t *testing.T) {
	for _, r := range []Response{respInvalidSignature, respUnknownAssistant, respUnavailable, respTooLarge,
		respMalformed, respNoAssistant, respReceived, respDuplicate} {
		got, err := r.JSON()
		want, werr := json.Marshal(r.Body)
		if err != nil || werr != nil || string(got) != string(want) || r.encoded == nil {
			t.Errorf("%d: %s, want %s (%v, %v)", r.Status, got, want, err, werr)
		}
	}
	dynamic := Response{Status: 200, Body: map[string]any{"results": []int{1}}}
	if got, err := dynamic.JSON(); err != nil || string(got) != `{"results":[1]}` {
		t.Errorf("a dynamic answer: %s, %v", got, err)
	}
}
