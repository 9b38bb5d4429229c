package web

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
	a.Get("/healthz", s.healthz)
	a.Get("/readyz", s.readyz)
	a.Get("/metrics", s.requireMetricsAccess, s.metricsHandler())
	a.Get("/static/*", s.static)

	// Vapi's webhooks: authenticated by the org's webhook secret, not by a
	// session, so no CSRF token either.
	a.Post("/api/webhooks/vapi", s.vapiWebhook)

	// Operator routes, behind OPS_TOKEN (absent without it).
	ops := a.Group("/api/debug", s.requireOps)
	ops.Get("/webhook-stats", s.webhookStats)
	ops.Get("/cache-stats", s.cacheStats)
	ops.Post("/invalidate-cache", s.invalidateCache)

	// Token endpoints for JSON clients. They neither read nor set a cookie,
	// so they need no CSRF token: they are registered before it is checked.
	// Like the browser forms below, they count attempts per client address
	// and, when they check a password, per email (ratelimit.go).
	a.Post("/api/auth/signup", s.attemptsPerIP, s.apiSignup)
	a.Post("/api/auth/token", s.attemptsPerIP, s.attemptsPerEmail, s.apiToken)

	// Everything below knows who is asking (bearer token or session cookie).
	a.Use(s.authenticate)

	// Google Calendar's sign-in: top-level browser navigations to and from
	// Google. They check the sign-in themselves, so that a browser that is
	// not signed in is sent to the login page rather than answered 401 JSON.
	a.Get("/api/integrations/google_calendar/connect", s.googleConnect)
	a.Get("/api/auth/google-calendar/callback", s.googleCallback)

	// Signed-in users only. These areas refuse anonymous requests before the
	// CSRF check, so a client without credentials learns that it must sign
	// in (401, or the login page) rather than that a form expired (403).
	a.Use("/dashboard", s.requireUser)
	a.Use("/api/integrations", s.requireUser)

	// State-changing browser requests need the CSRF token.
	a.Use(s.csrf)

	a.Get("/", s.home)
	a.Get("/signup", s.signupPage)
	a.Post("/signup", s.attemptsPerIP, s.signup)
	a.Get("/login", s.loginPage)
	a.Post("/login", s.attemptsPerIP, s.attemptsPerEmail, s.login)
	a.Post("/logout", s.logout)

	// The integrations: the dashboard and the JSON API share the handlers,
	// each answering JSON, an htmx fragment or a full page.
	a.Get("/dashboard/integrations", s.integrations)
	a.Get("/api/integrations/status", s.integrations)
	a.Post("/api/integrations/:provider", s.saveIntegration)
	a.Post("/api/integrations/:provider/verify", s.verifyIntegration)
	a.Delete("/api/integrations/:provider", s.disconnectIntegration)
}
