package elevenlabs_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/providers/elevenlabs"
	"byoc/app/sandbox"
)

const timeout = 300 * time.Millisecond

func TestVerify(t *testing.T) {
	sb := sandbox.New()
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	standIn := sb.BaseURLs(srv.URL).ElevenLabs

	tests := []struct {
		name        string
		baseURL     string
		key         string
		wantCode    string
		wantLimited bool
		wantText    string // substring of the error message or the detail
	}{
		{"full key", standIn, "sk_4f9a0c3b7e", "", false, "full key on the creator plan"},
		{"key without User: Read", standIn, "sk_restricted_4f9a0c", "", true, elevenlabs.NoUserReadDetail},
		{"key without User: Read and Voices: Read", standIn, "sk_ttsonly_4f9a0c", "", true, elevenlabs.NoVoicesReadDetail},
		{"invalid key", standIn, "sk_invalid_4f9a0c", app.EVerificationFailed, false, "ElevenLabs rejected the API key (401 Unauthorized): the key is not valid."},
		{"key echoed back transformed", standIn, "sk_echo_4f9a0c3b7e", app.EVerificationFailed, false, "ElevenLabs rejected the API key (401 Unauthorized): the key is not valid."},
		{"provider down", standIn, "sk_down_4f9a0c", app.EProviderUnavailable, false, "503 Service Unavailable"},
		{"rate limited", standIn, "sk_ratelimit_4f9a0c", app.EProviderUnavailable, false, "429 Too Many Requests"},
		{"slow provider", standIn, "sk_slow_4f9a0c", app.EProviderUnavailable, false, "ElevenLabs could not be reached (timed out after 300ms). Try again."},
		{"unreachable", apptest.ClosedURL(t), "sk_4f9a0c3b7e", app.EProviderUnavailable, false, "connection refused"},
		{"empty key", standIn, "", app.EValidation, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := elevenlabs.New(tt.baseURL, nil, timeout)
			start := time.Now()
			v, err := client.Verify(context.Background(), app.ElevenLabsConfig{APIKey: app.NewSecret(tt.key), VoiceID: "21m00Tcm4TlvDq8ikWAM"})
			if got := app.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("code = %q, want %q (err %v)", got, tt.wantCode, err)
			}
			if time.Since(start) > 5*timeout {
				t.Errorf("Verify took %v", time.Since(start))
			}
			if v.Limited != tt.wantLimited {
				t.Errorf("Limited = %v, want %v", v.Limited, tt.wantLimited)
			}
			text := v.Detail
			if err != nil {
				text = app.ErrorMessage(err)
			}
			apptest.AssertNoFragment(t, "the text", text+" "+fmt.Sprint(err), tt.key)
			if !strings.Contains(text, tt.wantText) {
				t.Errorf("text = %q, want it to contain %q", text, tt.wantText)
			}
		})
	}
}
