package backfill

import (
	"context"
	"fmt"
	"time"

	"byoc/app"
)

// GoogleRefresher refreshes a Google grant with this server's OAuth
// client; *google.OAuth implements it.
type GoogleRefresher interface {
	Configured() bool
	Refresh(ctx context.Context, refreshToken string, now time.Time) (app.OAuthToken, error)
}

// GoogleGrant is the Verifier of a legacy Google Calendar grant: Google
// must accept its refresh token from this server's OAuth client (a refresh
// token works only with the client it was issued to). The access token it
// gets is not kept: the first use refreshes again.
func GoogleGrant(r GoogleRefresher) Verifier {
	return googleGrant{r}
}

type googleGrant struct{ r GoogleRefresher }

func (g googleGrant) Verify(ctx context.Context, _ string, cfg app.Config) (app.Verification, error) {
	c, ok := cfg.(app.GoogleCalendarConfig)
	if !ok {
		return app.Verification{}, app.Internal(fmt.Errorf("backfill: a %T is not a Google Calendar grant", cfg))
	}
	if g.r == nil || !g.r.Configured() {
		return app.Verification{}, app.Errorf(app.ENotConfigured, "Google Calendar is not set up on this server.")
	}
	if _, err := g.r.Refresh(ctx, c.RefreshToken.Reveal(), time.Now()); err != nil {
		return app.Verification{}, err
	}
	return app.Verification{Detail: "Google accepted the grant's refresh token."}, nil
}
