package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"github.com/gofiber/fiber/v2"

	"byoc/app"
	"byoc/app/credentials"
)

// CredentialCache is the credential service's cache as operators see it;
// *credentials.Service implements it.
type CredentialCache interface {
	Stats() credentials.Stats
	Invalidate(orgID, provider string) int
}

// requireOps lets a request through only with `Authorization: Bearer
// <OPS_TOKEN>`. Without a configured token the operator routes do not exist
// (404), so a forgotten setting never opens them.
func (s *Server) requireOps(c *fiber.Ctx) error {
	if s.opts.OpsToken == "" {
		return fiber.ErrNotFound
	}
	got, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	// Hashing both sides first keeps the comparison constant-time whatever
	// the lengths.
	want, have := sha256.Sum256([]byte(s.opts.OpsToken)), sha256.Sum256([]byte(got))
	if !ok || subtle.ConstantTimeCompare(want[:], have[:]) != 1 {
		return app.Errorf(app.EUnauthorized, "This route needs the operator token.")
	}
	return c.Next()
}

// requireMetricsAccess guards /metrics: with OPS_TOKEN configured it needs
// that token (Prometheus sends it as a bearer credential); without one,
// /metrics is open in development and absent in production, so process and
// traffic details are never public by accident.
func (s *Server) requireMetricsAccess(c *fiber.Ctx) error {
	if s.opts.OpsToken == "" && !s.opts.Production {
		return c.Next()
	}
	return s.requireOps(c)
}

// webhookStats answers the webhook counts by outcome and the latency of
// resolution plus verification.
func (s *Server) webhookStats(c *fiber.Ctx) error {
	return sendJSON(c, fiber.StatusOK, s.deps.Webhooks.Stats())
}

// cacheStat is one cache in the cache-stats answer.
type cacheStat struct {
	Hits    uint64  `json:"hits"`
	Misses  uint64  `json:"misses"`
	HitRate float64 `json:"hitRate"`
	Items   int     `json:"items"`
}

func credentialCacheStat(cs credentials.CacheStats) cacheStat {
	st := cacheStat{Hits: cs.Hits, Misses: cs.Misses, Items: cs.Items}
	if total := cs.Hits + cs.Misses; total > 0 {
		st.HitRate = float64(cs.Hits) / float64(total)
	}
	return st
}

// cacheStats answers hits, misses, hit rate and size of every cache.
func (s *Server) cacheStats(c *fiber.Ctx) error {
	cs := s.deps.Credentials.Stats()
	hs := s.deps.Webhooks.CacheStats()
	out := map[string]any{
		"credentialConfigs":  credentialCacheStat(cs.Configs),
		"credentialStatuses": credentialCacheStat(cs.Statuses),
		"webhookMappings":    hs.Mappings,
		"webhookSecrets":     hs.Secrets,
		"webhookDeliveries":  hs.Deliveries,
	}
	if s.deps.SignIns != nil {
		ss := s.deps.SignIns.Stats()
		out["signIns"] = credentialCacheStat(credentials.CacheStats{Hits: ss.Hits, Misses: ss.Misses, Items: ss.Items})
	}
	return sendJSON(c, fiber.StatusOK, out)
}

// invalidateInput is the body of POST /api/debug/invalidate-cache.
type invalidateInput struct {
	OrgID string `json:"orgId" form:"orgId"`
}

// invalidateCache drops every cached entry of one org on this instance (the
// credential service's invalidation reaches every cache of its group, the
// webhook routing's too) and answers how many entries were dropped.
func (s *Server) invalidateCache(c *fiber.Ctx) error {
	var in invalidateInput
	if err := bind(c, &in); err != nil {
		return err
	}
	in.OrgID = strings.TrimSpace(in.OrgID)
	if !app.IsUUID(in.OrgID) {
		return app.ValidationError(map[string]string{"orgId": "Give the org's id (a UUID)."})
	}
	dropped := s.deps.Credentials.Invalidate(in.OrgID, "")
	return sendJSON(c, fiber.StatusOK, map[string]any{"orgId": in.OrgID, "dropped": dropped})
}
