package auth

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"byoc/app"
)

// Input limits. Passwords are limited to 72 bytes because bcrypt ignores
// everything after that.
const (
	maxOrgNameChars  = 100
	maxEmailBytes    = 254
	minPasswordChars = 12
	maxPasswordBytes = 72
)

// validateSignup returns the trimmed org name and the normalised email, or an
// EValidation error with a message for each bad field.
func validateSignup(in SignupInput) (orgName, email string, err error) {
	fields := map[string]string{}
	orgName = strings.TrimSpace(in.OrgName)
	switch {
	case orgName == "":
		fields["orgName"] = "Enter your organization's name."
	case utf8.RuneCountInString(orgName) > maxOrgNameChars:
		fields["orgName"] = "Use at most 100 characters."
	case strings.IndexFunc(orgName, unicode.IsControl) >= 0:
		fields["orgName"] = "Use letters, digits, spaces and punctuation only."
	}
	email = normalizeEmail(in.Email)
	if msg := checkEmail(email); msg != "" {
		fields["email"] = msg
	}
	if msg := checkPassword(in.Password); msg != "" {
		fields["password"] = msg
	}
	return orgName, email, app.ValidationError(fields)
}

// normalizeEmail trims and lower-cases an email address; accounts are stored
// and looked up in this form.
func normalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// checkEmail returns a message when email (normalised) is not a plain
// address like name@example.com, and "" when it is.
func checkEmail(email string) string {
	if email == "" {
		return "Enter your email address."
	}
	if len(email) > maxEmailBytes {
		return "Use an email address of at most 254 characters."
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" {
		return "Enter an email address like name@example.com."
	}
	return ""
}

// checkPassword returns a message when password is too short or too long,
// and "" when it is acceptable.
func checkPassword(password string) string {
	switch {
	case password == "":
		return "Choose a password."
	case utf8.RuneCountInString(password) < minPasswordChars:
		return "Use at least 12 characters."
	case len(password) > maxPasswordBytes:
		return "Use at most 72 bytes (72 plain letters; accented letters and symbols count as more)."
	}
	return ""
}

// requireLogin returns messages for empty login fields.
func requireLogin(email, password string) map[string]string {
	fields := map[string]string{}
	if email == "" {
		fields["email"] = "Enter your email address."
	}
	if password == "" {
		fields["password"] = "Enter your password."
	}
	return fields
}
