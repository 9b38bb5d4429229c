package app

import "strings"

// Provider names one of the five services an org connects. The string value
// is what the database (org_credentials.provider) and the URL path use.
type Provider string

// Providers lists every provider in dashboard order: the order of the
// catalog (catalog.go), where each provider is described.
var Providers = func() []Provider {
	out := make([]Provider, len(catalog))
	for i, s := range catalog {
		out[i] = s.Provider
	}
	return out
}()

// ParseProvider returns the provider named s, or an EUnknownProvider error.
func ParseProvider(s string) (Provider, error) {
	for _, p := range Providers {
		if string(p) == s {
			return p, nil
		}
	}
	return "", Errorf(EUnknownProvider, "There is no provider called %q.", truncate(s, 40))
}

// Title is the provider's display name.
func (p Provider) Title() string {
	if s, err := Describe(p); err == nil {
		return s.Title
	}
	return string(p)
}

// JSONKey is the provider's key in the status object of the JSON API: its
// name in lower camel case ("googleCalendar" rather than "google_calendar").
func (p Provider) JSONKey() string {
	parts := strings.Split(string(p), "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
