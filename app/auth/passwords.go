package auth

import (
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// DefaultBcryptCost is the bcrypt work factor for password hashes: about a
// quarter of a second per hash on a small server.
const DefaultBcryptCost = 12

// passwords hashes and checks passwords with bcrypt. burn spends the same
// time as a real check, for logins with an unknown email, so response times
// do not tell which emails have accounts.
type passwords struct {
	cost int

	dummyOnce sync.Once
	dummy     []byte
}

func newPasswords(cost int) *passwords {
	if cost == 0 {
		cost = DefaultBcryptCost
	}
	return &passwords{cost: cost}
}

func (p *passwords) hash(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), p.cost)
	if err != nil {
		return "", err
	}
	return string(h), nil
}

// check reports whether password matches hash, in constant time.
func (p *passwords) check(hash, password string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// burn runs a comparison against a fixed hash of the configured cost and
// throws the result away.
func (p *passwords) burn(password string) {
	p.dummyOnce.Do(func() {
		p.dummy, _ = bcrypt.GenerateFromPassword([]byte("byoc dummy password for timing"), p.cost)
	})
	if len(password) > maxPasswordBytes {
		password = password[:maxPasswordBytes]
	}
	_ = bcrypt.CompareHashAndPassword(p.dummy, []byte(password))
}
