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
	msg, err := checkPassword(in.Password, email, orgName)
	if err != nil {
		return "", "", err
	}
	if msg != "" {
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

// checkPassword returns a message saying why password may not be chosen by
// the owner of email in the org orgName, and "" when it may (NIST SP
// 800-63B): it must have 12 characters to 72 bytes, must not be on the list
// of commonly used and breached passwords, and must not contain the email's
// local part or the org's name, in any letter case and whatever stands
// between their letters and digits. The error is internal: the list could
// not be read.
func checkPassword(password, email, orgName string) (string, error) {
	switch {
	case password == "":
		return "Choose a password.", nil
	case utf8.RuneCountInString(password) < minPasswordChars:
		return "Use at least 12 characters.", nil
	case len(password) > maxPasswordBytes:
		return "Use at most 72 bytes (72 plain letters; accented letters and symbols count as more).", nil
	}
	common, err := commonPasswordList()
	if err != nil {
		return "", app.Internal(err)
	}
	if common.contains(password) {
		return "This password is on a list of commonly used or leaked passwords, which attackers try first. Choose another one.", nil
	}
	local, _, _ := strings.Cut(email, "@")
	plain := contextWord(password)
	if containsContextWord(plain, local) || containsContextWord(plain, strings.SplitN(local, "+", 2)[0]) {
		return "Do not use your email address (the part before the @) in your password.", nil
	}
	if containsContextWord(plain, orgName) {
		return "Do not use your organization's name in your password.", nil
	}
	return "", nil
}

// minContextChars is the length (in letters and digits) from which a
// password may not contain the email's local part or the org's name:
// shorter ones would refuse good passwords by chance.
const minContextChars = 3

// containsContextWord reports whether plain (a contextWord) contains the
// letters and digits of word, when word has at least minContextChars of
// them.
func containsContextWord(plain, word string) bool {
	w := contextWord(word)
	return utf8.RuneCountInString(w) >= minContextChars && strings.Contains(plain, w)
}

// contextWord returns the letters and digits of s, lower-cased.
func contextWord(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return unicode.ToLower(r)
		}
		return -1
	}, s)
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
