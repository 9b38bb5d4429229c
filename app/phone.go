package app

import (
	"errors"
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// ErrInvalidPhoneNumber is the cause of the EValidation error NormalizeE164
// returns; test it with errors.Is.
var ErrInvalidPhoneNumber = errors.New("invalid phone number")

// NormalizeE164 parses a phone number as a person would type it and returns
// it in E.164 form ("+12025550123"). A number without a leading "+" (or
// international prefix) is read in defaultRegion, a two-letter region code
// such as "US" or "GB" ("" allows international numbers only). It returns an
// EValidation error wrapping ErrInvalidPhoneNumber when the input is not a
// valid number.
func NormalizeE164(input, defaultRegion string) (string, error) {
	input = strings.TrimSpace(input)
	invalid := &Error{
		Code:    EValidation,
		Message: "Enter a valid phone number in international format, such as +12025550123.",
		Cause:   ErrInvalidPhoneNumber,
	}
	if input == "" || len(input) > 64 {
		return "", invalid
	}
	num, err := phonenumbers.Parse(input, strings.ToUpper(defaultRegion))
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", invalid
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// FormatPhone returns an E.164 number grouped the way its country writes
// it internationally ("+44 20 7183 8750", "+33 6 12 34 56 78"); a value
// that is not a valid number comes back unchanged.
func FormatPhone(e164 string) string {
	num, err := phonenumbers.Parse(e164, "")
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return e164
	}
	return phonenumbers.Format(num, phonenumbers.INTERNATIONAL)
}

// MaskPhone shows an E.164 number with its middle hidden: the country code
// and the next three digits stay, every further digit but the last four
// becomes "•", as in "+1202•••1234". A value that is not an E.164 number
// keeps at most its last four characters (not bytes).
func MaskPhone(e164 string) string {
	digits, ok := strings.CutPrefix(e164, "+")
	if !ok || !isDigits(digits) || len(digits) < 8 {
		r := []rune(e164)
		if len(r) <= 4 {
			return "••••"
		}
		return "••••" + string(r[len(r)-4:])
	}
	cc := 1
	if num, err := phonenumbers.Parse(e164, ""); err == nil {
		cc = len(strconv.Itoa(int(num.GetCountryCode())))
	}
	keep := cc + 3
	if keep > len(digits)-4 {
		keep = len(digits) - 4
	}
	return "+" + digits[:keep] + strings.Repeat("•", len(digits)-keep-4) + digits[len(digits)-4:]
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
