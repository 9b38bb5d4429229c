package paths_test

import (
	"testing"

	"byoc/app/paths"
)

func TestBuiltPaths(t *testing.T) {
	tests := []struct{ got, want string }{
		{paths.Integration("vapi"), "/api/integrations/vapi"},
		{paths.IntegrationVerify("google_calendar"), "/api/integrations/google_calendar/verify"},
		{paths.IntegrationRoute, "/api/integrations/:provider"},
		{paths.IntegrationVerifyRoute, "/api/integrations/:provider/verify"},
		{paths.APIStatus, "/api/integrations/status"},
		{paths.GoogleConnect, "/api/integrations/google_calendar/connect"},
		{paths.StaticRoute, "/static/*"},
		{paths.StaticFile("css/app.css"), "/static/css/app.css"},
		{paths.DebugInvalidateCache, "/api/debug/invalidate-cache"},
		{paths.Invite("tok"), "/invite/tok"},
		{paths.InviteRoute, "/invite/:token"},
		{paths.Reset("tok"), "/reset/tok"},
		{paths.ResetRoute, "/reset/:token"},
		{paths.TeamInvite("x"), "/api/team/invites/x"},
		{paths.TeamInviteRoute, "/api/team/invites/:id"},
		{paths.TeamMember("u"), "/api/team/members/u"},
		{paths.TeamMemberRoute, "/api/team/members/:id"},
		{paths.AccountPassword, "/api/account/password"},
		{paths.OpenAPI, "/api/openapi.json"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
