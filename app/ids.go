package app

import "regexp"

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// IsUUID reports whether s is a UUID in its canonical textual form, as
// PostgreSQL prints the ids of orgs and users.
func IsUUID(s string) bool { return uuidPattern.MatchString(s) }
