package app_test

import (
	"errors"
	"testing"

	"byoc/app"
)

func TestNormalizeE164(t *testing.T) {
	tests := []struct {
		name, input, region string
		want                string // "" means invalid
	}{
		{"US national with punctuation", "(202) 555-0123", "US", "+12025550123"},
		{"US national digits only", "2025550123", "US", "+12025550123"},
		{"US with trunk prefix 1", "1-202-555-0123", "US", "+12025550123"},
		{"region code in lower case", "202 555 0123", "us", "+12025550123"},
		{"international UK mobile", "+44 7911 123456", "US", "+447911123456"},
		{"UK national in GB", "07911 123456", "GB", "+447911123456"},
		{"international without region", "+1 202 555 0123", "", "+12025550123"},
		{"surrounding spaces", "  +447911123456  ", "", "+447911123456"},
		{"national without region", "2025550123", "", ""},
		{"too short", "12345", "US", ""},
		{"unassigned US area code", "+1 011 555 0123", "", ""},
		{"letters", "call me", "US", ""},
		{"empty", "", "US", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := app.NormalizeE164(tt.input, tt.region)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("NormalizeE164(%q, %q) = %q, want an error", tt.input, tt.region, got)
				}
				if !errors.Is(err, app.ErrInvalidPhoneNumber) || app.ErrorCode(err) != app.EValidation {
					t.Errorf("err = %v, want EValidation wrapping ErrInvalidPhoneNumber", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("NormalizeE164(%q, %q) = %q, %v; want %q", tt.input, tt.region, got, err, tt.want)
			}
		})
	}
}

func TestMaskPhone(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"US", "+12025551234", "+1202•••1234"},
		{"UK", "+447911123456", "+44791•••3456"},
		{"three-digit country code", "+353861234567", "+353861••4567"},
		{"short number keeps no middle", "+4312345678", "+43123•5678"},
		{"not E.164", "202-555-1234", "••••1234"},
		{"not E.164, ending in multi-byte characters", "+1 202 ۵۵۵ ۱۲۳۴", "••••۱۲۳۴"},
		{"four multi-byte characters", "۱۲۳۴", "••••"},
		{"tiny", "123", "••••"},
		{"empty", "", "••••"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := app.MaskPhone(tt.in); got != tt.want {
				t.Errorf("MaskPhone(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFormatPhone(t *testing.T) {
	tests := []struct{ in, want string }{
		{"+442071838750", "+44 20 7183 8750"},
		{"+33612345678", "+33 6 12 34 56 78"},
		{"+12025550123", "+1 202-555-0123"},
		{"+4930123456", "+49 30 123456"},
		{"not a number", "not a number"},
		{"+1011", "+1011"},
	}
	for _, tt := range tests {
		if got := app.FormatPhone(tt.in); got != tt.want {
			t.Errorf("FormatPhone(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
