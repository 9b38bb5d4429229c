package app

import (
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"
)

// Busy is a span of time a calendar is taken.
type Busy struct {
	Start, End time.Time
}

// Booking is an appointment to put into an org's calendar.
type Booking struct {
	Start, End time.Time
	// Summary is the event's title.
	Summary string
	// AttendeeEmail, when set, is invited to the event.
	AttendeeEmail string
	// Description is optional text for the event.
	Description string
}

// MaxFreeBusySpan is the longest period one free/busy question may cover.
const MaxFreeBusySpan = 62 * 24 * time.Hour

// CheckPeriod returns an EValidation error (fields start and end) unless
// [start, end) is a period of at most MaxFreeBusySpan.
func CheckPeriod(start, end time.Time) error {
	fields := map[string]string{}
	switch {
	case start.IsZero():
		fields["start"] = "Give the start of the period."
	case end.IsZero():
		fields["end"] = "Give the end of the period."
	case !end.After(start):
		fields["end"] = "The end must be after the start."
	case end.Sub(start) > MaxFreeBusySpan:
		fields["end"] = fmt.Sprintf("Look at most %d days ahead at once.", int(MaxFreeBusySpan.Hours()/24))
	}
	return ValidationError(fields)
}

// Checked returns b with its title and attendee trimmed, or an EValidation
// error naming the bad fields (start, end, summary, attendeeEmail,
// description).
func (b Booking) Checked() (Booking, error) {
	b.Summary = strings.TrimSpace(b.Summary)
	b.AttendeeEmail = strings.TrimSpace(b.AttendeeEmail)
	fields := map[string]string{}
	switch {
	case b.Start.IsZero():
		fields["start"] = "Give the start of the appointment."
	case b.End.IsZero():
		fields["end"] = "Give the end of the appointment."
	case !b.End.After(b.Start):
		fields["end"] = "The end must be after the start."
	}
	if b.Summary == "" {
		fields["summary"] = "Give the appointment a title."
	} else if utf8.RuneCountInString(b.Summary) > 1000 {
		fields["summary"] = "Keep the title under 1000 characters."
	}
	if b.AttendeeEmail != "" {
		if a, err := mail.ParseAddress(b.AttendeeEmail); err != nil || a.Address != b.AttendeeEmail || len(b.AttendeeEmail) > MaxEmailLength {
			fields["attendeeEmail"] = "Enter a valid email address."
		}
	}
	if utf8.RuneCountInString(b.Description) > 8000 {
		fields["description"] = "Keep the description under 8000 characters."
	}
	return b, ValidationError(fields)
}
