package app

import (
	"math/rand/v2"
	"regexp"
	"testing"
)

// uuidPattern is the definition IsUUID implements.
var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func TestIsUUIDMatchesItsPattern(t *testing.T) {
	cases := []string{
		"", "x", "0b7c4a0e-8a55-4a57-9a8f-3a1b6f1e2d3c", "0B7C4A0E-8A55-4A57-9A8F-3A1B6F1E2D3C",
		"0b7c4a0e-8a55-4a57-9a8f-3a1b6f1e2d3", "0b7c4a0e-8a55-4a57-9a8f-3a1b6f1e2d3c0",
		"0b7c4a0e-8a55-4a57-9a8f-3a1b6f1e2d3c\n", "0b7c4a0e8a55-4a57-9a8f-3a1b6f1e2d3c-",
		"0b7c4a0g-8a55-4a57-9a8f-3a1b6f1e2d3c", "0b7c4a0e_8a55_4a57_9a8f_3a1b6f1e2d3c",
		"{b7c4a0e-8a55-4a57-9a8f-3a1b6f1e2d3c", "0b7c4a0e-8a55-4a57-9a8f-3a1b6f1e2d3é",
	}
	const alphabet = "0123456789abcdefABCDEFgG-x"
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := []byte("0b7c4a0e-8a55-4a57-9a8f-3a1b6f1e2d3c")
		for range 1 + r.IntN(2) {
			b[r.IntN(len(b))] = alphabet[r.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		if got, want := IsUUID(s), uuidPattern.MatchString(s); got != want {
			t.Fatalf("IsUUID(%q) = %v, the pattern says %v", s, got, want)
		}
	}
}
