package web

import "byoc/app/paths"

// routes declares every route and the middleware in front of it. Fiber runs
// middleware and routes in the order they are registered, so the order here
// is the order a request goes through.
func (s *Server) routes() {
	a := s.app

	// Every request: request id, deadline, access log, metrics and the error
	// handler (observe); panics become 500s (recoverPanic); security headers
	// and Vary (secure).
	a.Use(s.observe, s.recoverPanic, s.secure)

	// Operations and static files: no session, no CSRF.
	a.Get(paths.Healthz, s.healthz)
	a.Get(paths.Readyz, s.readyz)
	a.Get(paths.Metrics, s.requireMetricsAccess, s.metricsHandler())
	a.Get(paths.StaticRoute, s.static)

	// Vapi's webhooks: authenticated by the org's webhook secret, not by a
	// session, so no CSRF token either.
	a.Post(paths.Webhooks, s.vapiWebhook)

	// The JSON API's OpenAPI description: public, like the routes it
	// describes.
	a.Get(paths.OpenAPI, s.openAPIDoc)

	// Operator routes, behind OPS_TOKEN (absent without it). The check
	// covers the whole area, so without the token no path or method under
	// it is told apart.
	a.Use(paths.DebugPrefix, s.requireOps)
	a.Get(paths.DebugWebhookStats, s.webhookStats)
	a.Get(paths.DebugCacheStats, s.cacheStats)
	a.Post(paths.DebugInvalidateCache, s.invalidateCache)

	// Token endpoints for JSON clients: the signup and login handlers of the
	// browser forms below, which hand out a bearer token on these routes.
	// They neither read nor set a cookie, so they need no CSRF token: they
	// are registered before it is checked. Like the forms, they count
	// signups per client address and failed sign-ins per address and
	// e-mail (ratelimit.go).
	a.Post(paths.APISignup, s.limitSignups, s.signup)
	a.Post(paths.APIToken, s.login)
	// The same for joining by invitation and asking for a password reset
	// link (counted per address and e-mail like sign-ins).
	a.Post(paths.APIAcceptInvite, s.acceptInvite)
	a.Post(paths.APIPasswordReset, s.requestReset)

	// Everything below knows who is asking (bearer token or session cookie).
	a.Use(s.authenticate)

	// Google Calendar's sign-in: top-level browser navigations to and from
	// Google. They check the sign-in themselves, so that a browser that is
	// not signed in is sent to the login page rather than answered 401 JSON.
	a.Get(paths.GoogleConnect, s.googleConnect)
	a.Get(paths.GoogleCallback, s.googleCallback)

	// Signed-in users only. These areas refuse anonymous requests before the
	// CSRF check, so a client without credentials learns that it must sign
	// in (401, or the login page) rather than that a form expired (403).
	a.Use(paths.DashboardPrefix, s.requireUser)
	a.Use(paths.IntegrationsPrefix, s.requireUser)
	a.Use(paths.SettingsPrefix, s.requireUser)
	a.Use(paths.TeamPrefix, s.requireUser)
	a.Use(paths.AccountPrefix, s.requireUser)

	// State-changing browser requests need the CSRF token.
	a.Use(s.csrf)

	a.Get(paths.Home, s.home)
	a.Get(paths.Signup, s.signupPage)
	a.Post(paths.Signup, s.limitSignups, s.signup)
	a.Get(paths.Login, s.loginPage)
	a.Post(paths.Login, s.login)
	a.Post(paths.Logout, s.logout)

	// The integrations: the dashboard and the JSON API share the handlers,
	// each answering JSON, an htmx fragment or a full page. Saving and
	// testing call the provider: they count per org and address.
	a.Get(paths.Dashboard, s.integrations)
	a.Get(paths.APIStatus, s.integrations)
	// A browser may cancel its own running save or test (inflight.go).
	a.Post(paths.IntegrationRoute, s.limitProviderCalls, s.cancellable, s.saveIntegration)
	a.Patch(paths.IntegrationRoute, s.limitProviderCalls, s.cancellable, s.updateIntegration)
	a.Post(paths.IntegrationVerifyRoute, s.limitProviderCalls, s.cancellable, s.verifyIntegration)
	a.Post(paths.AttemptCancelRoute, s.cancelAttempt)
	a.Delete(paths.IntegrationRoute, s.disconnectIntegration)
	a.Post(paths.VapiWebhookSigning, s.setWebhookSigning)
	a.Post(paths.VapiWebhookSecretRotate, s.limitProviderCalls, s.rotateWebhookSecret)
	a.Post(paths.VapiWebhookSecretReveal, s.revealWebhookSecret)

	// Members and invitations (settings area and API), joining by
	// invitation, password reset by e-mail and the user's own account.
	a.Get(paths.Team, s.teamPage)
	a.Get(paths.APITeam, s.teamPage)
	a.Post(paths.TeamInvites, s.invite)
	a.Delete(paths.TeamInviteRoute, s.revokeInvite)
	a.Patch(paths.TeamMemberRoute, s.setMemberRole)
	a.Delete(paths.TeamMemberRoute, s.removeMember)
	a.Get(paths.InviteRoute, s.joinPage)
	a.Post(paths.InviteRoute, s.acceptInvite)
	a.Get(paths.PasswordReset, s.forgotPage)
	a.Post(paths.PasswordReset, s.requestReset)
	a.Get(paths.ResetRoute, s.resetPage)
	a.Post(paths.ResetRoute, s.resetPassword)
	a.Get(paths.Account, s.accountPage)
	a.Post(paths.AccountPassword, s.changePassword)

	// The activity: the audit log and the webhook deliveries (admins).
	if s.deps.Activity != nil {
		a.Get(paths.Activity, s.activityPage)
		a.Get(paths.APIAudit, s.requireUser, s.activityPage)
		a.Get(paths.APIDeliveries, s.requireUser, s.deliveries)
	}

	// The development outbox: only without a mail key, never in
	// production.
	if s.deps.Outbox != nil && !s.opts.Production {
		a.Get(paths.DevOutbox, s.outbox)
	}
}
