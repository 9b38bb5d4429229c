package app

import "time"

// MaxPendingOAuthStates is how many pending OAuth authorizations an org
// keeps: starting one more drops the org's oldest, whose callback is then
// refused as unknown. An admin rarely has more than one or two flows open;
// the cap keeps a flood of connect starts from growing the table.
const MaxPendingOAuthStates = 10

// OAuthState is one pending OAuth authorization: the server's half of the
// `state` parameter it sent to the provider, kept until the browser comes
// back to the callback (at most once, and only until ExpiresAt).
//
// It holds no usable secret in the clear: StateHash and SessionBinding are
// hex SHA-256 digests of the values the browser holds, and CodeVerifier is
// the PKCE verifier sealed by the keyring (bound to the org and the state),
// so a database reader can neither forge a callback nor redeem a stolen
// authorization code with what is stored here.
type OAuthState struct {
	// StateHash is the lowercase hex SHA-256 of the state sent to the
	// provider; it is the row's key.
	StateHash string
	// OrgID and UserID are the org and the admin who started the flow; only
	// that user, in that org, may finish it.
	OrgID  string
	UserID string
	// SessionBinding is the lowercase hex SHA-256 of a value tied to the
	// browser session that started the flow; the callback must come from the
	// same session.
	SessionBinding string
	// CodeVerifier is the sealed PKCE code verifier.
	CodeVerifier []byte
	// CreatedAt is when the flow started; the zero time means "now" to the
	// store.
	CreatedAt time.Time
	// ExpiresAt is when the state stops being accepted.
	ExpiresAt time.Time
}
