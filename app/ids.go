package app

// IsUUID reports whether s is a UUID in its canonical textual form, as
// PostgreSQL prints the ids of orgs and users: 36 characters, hex digits
// (either case) in groups of 8, 4, 4, 4 and 12 joined by hyphens. It runs
// on every webhook and signed-in request, so it is a plain loop.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
