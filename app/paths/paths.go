// Package paths holds the HTTP surface's paths, named once; the router, the
// views and the redirects use them, so a path never drifts between the route
// that serves it and the links, forms and redirects that lead to it.
//
// Names ending in Prefix cover a whole area of the surface; names ending in
// Route are Fiber patterns with parameters, for the router only.
package paths

// Pages and forms of the browser.
const (
	Home      = "/"
	Signup    = "/signup"
	Login     = "/login"
	Logout    = "/logout"
	Dashboard = "/dashboard/integrations"

	// DashboardPrefix is the signed-in area of the browser.
	DashboardPrefix = "/dashboard"

	// SettingsPrefix is the signed-in settings area: the team and the
	// user's own account.
	SettingsPrefix = "/settings"
	Team           = SettingsPrefix + "/team"
	Account        = SettingsPrefix + "/account"
	// Activity shows the audit log and the webhook deliveries (admins).
	Activity = SettingsPrefix + "/activity"

	// PasswordReset asks for a reset link; the link leads to Reset.
	PasswordReset = "/password-reset"

	// TokenParam is the name of the link token parameter in InviteRoute
	// and ResetRoute.
	TokenParam   = "token"
	InviteRoute  = invitePrefix + ":" + TokenParam
	ResetRoute   = resetPrefix + ":" + TokenParam
	invitePrefix = "/invite/"
	resetPrefix  = "/reset/"

	// DevOutbox shows the mail kept instead of sent (development only).
	DevOutbox = "/dev/outbox"
)

// Invite is the page of an invitation link, such as "/invite/<token>".
func Invite(token string) string { return invitePrefix + token }

// Reset is the page of a password reset link, such as "/reset/<token>".
func Reset(token string) string { return resetPrefix + token }

// Operations.
const (
	Healthz = "/healthz"
	Readyz  = "/readyz"
	Metrics = "/metrics"

	// StaticRoute serves the embedded static files (StaticFile names one).
	StaticRoute  = staticPrefix + "*"
	staticPrefix = "/static/"
)

// The JSON API and the routes that other parties call.
const (
	// APIPrefix is where JSON API paths start: answers under it default
	// to JSON.
	APIPrefix = "/api/"

	// OpenAPI is the JSON API's OpenAPI description.
	OpenAPI = "/api/openapi.json"

	APISignup = "/api/auth/signup"
	APIToken  = "/api/auth/token"

	// APIAcceptInvite joins an org by invitation; APIPasswordReset asks
	// for a password reset link.
	APIAcceptInvite  = "/api/auth/accept-invite"
	APIPasswordReset = "/api/auth/password-reset"

	// TeamPrefix is the team API: the members and invitations
	// (APITeam), inviting (TeamInvites), revoking (TeamInviteRoute) and
	// changing or removing a member (TeamMemberRoute).
	TeamPrefix      = "/api/team"
	APITeam         = TeamPrefix
	TeamInvites     = TeamPrefix + "/invites"
	TeamMembers     = TeamPrefix + "/members"
	IDParam         = "id"
	TeamInviteRoute = TeamInvites + "/:" + IDParam
	TeamMemberRoute = TeamMembers + "/:" + IDParam

	// AccountPrefix is the signed-in user's own account;
	// AccountPassword changes the password.
	AccountPrefix   = "/api/account"
	AccountPassword = AccountPrefix + "/password"

	// IntegrationsPrefix is the integrations API: the status, and the
	// actions on one provider (Integration, IntegrationVerify).
	IntegrationsPrefix = "/api/integrations"
	APIStatus          = IntegrationsPrefix + "/status"

	// ProviderParam is the name of the provider parameter in
	// IntegrationRoute and IntegrationVerifyRoute.
	ProviderParam          = "provider"
	IntegrationRoute       = IntegrationsPrefix + "/:" + ProviderParam
	IntegrationVerifyRoute = IntegrationRoute + verifySuffix
	verifySuffix           = "/verify"

	// AttemptsPrefix names the running saves and connection tests a
	// browser may cancel; AttemptCancelRoute cancels one by the id its
	// browser gave it.
	AttemptsPrefix     = IntegrationsPrefix + "/attempts"
	AttemptCancelRoute = AttemptsPrefix + "/:attempt/cancel"

	// VapiWebhookSigning turns the org's HMAC-only setting of Vapi's
	// webhooks on or off.
	VapiWebhookSigning = IntegrationsPrefix + "/vapi/webhook-signing"

	// VapiWebhookSecretRotate replaces the org's Vapi webhook secret and
	// answers the new one; VapiWebhookSecretReveal shows the current one,
	// once.
	VapiWebhookSecretRotate = IntegrationsPrefix + "/vapi/webhook-secret/rotate"
	VapiWebhookSecretReveal = IntegrationsPrefix + "/vapi/webhook-secret/reveal"

	// GoogleConnect starts Google's sign-in; Google sends the browser back
	// to GoogleCallback.
	GoogleConnect  = IntegrationsPrefix + "/google_calendar/connect"
	GoogleCallback = "/api/auth/google-calendar/callback"

	// Webhooks receives Vapi's webhooks.
	Webhooks = "/api/webhooks/vapi"

	// APIAudit pages the org's audit log; APIDeliveries its recorded
	// webhook deliveries and refusal counts (admins).
	APIAudit      = "/api/audit"
	APIDeliveries = "/api/webhooks/deliveries"

	// DebugPrefix holds the operator routes.
	DebugPrefix          = "/api/debug"
	DebugWebhookStats    = DebugPrefix + "/webhook-stats"
	DebugCacheStats      = DebugPrefix + "/cache-stats"
	DebugInvalidateCache = DebugPrefix + "/invalidate-cache"
)

// Integration is the path of one provider's integration (save, disconnect),
// such as "/api/integrations/vapi".
func Integration(provider string) string { return IntegrationsPrefix + "/" + provider }

// IntegrationVerify is the path of one provider's connection test, such as
// "/api/integrations/vapi/verify".
func IntegrationVerify(provider string) string { return Integration(provider) + verifySuffix }

// IntegrationConnect is where a browser starts the sign-in of an OAuth
// provider, such as GoogleConnect.
func IntegrationConnect(provider string) string { return Integration(provider) + "/connect" }

// StaticFile is the path of an embedded static file, such as
// "/static/css/app.css".
func StaticFile(name string) string { return staticPrefix + name }

// TeamInvite is the path of one invitation, such as "/api/team/invites/<id>".
func TeamInvite(id string) string { return TeamInvites + "/" + id }

// TeamMember is the path of one member, such as "/api/team/members/<id>".
func TeamMember(userID string) string { return TeamMembers + "/" + userID }
