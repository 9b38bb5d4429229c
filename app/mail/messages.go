package mail

import (
	"fmt"
	"time"
)

// InviteMessage is the invitation to join orgName as role, sent to the
// invitee; link sets their password and joins them.
func InviteMessage(to, orgName, inviter, role, link string, expires time.Time) Message {
	return Message{
		To:      to,
		Subject: fmt.Sprintf("You're invited to join %s on BYOC", orgName),
		Text: fmt.Sprintf("%s invited you to join %s on BYOC as %s.\n\n"+
			"Choose your password and join here:\n%s\n\n"+
			"The link works once and expires on %s. If you did not expect this invitation, ignore this e-mail.\n",
			inviter, orgName, articled(role), link, expires.UTC().Format("2 January 2006 at 15:04 UTC")),
	}
}

// PasswordResetMessage is the password reset link sent to to.
func PasswordResetMessage(to, link string, valid time.Duration) Message {
	return Message{
		To:      to,
		Subject: "Reset your BYOC password",
		Text: fmt.Sprintf("Someone asked to reset the password of your BYOC account.\n\n"+
			"Choose a new password here:\n%s\n\n"+
			"The link works once and for %d minutes. Setting a new password signs you out everywhere else.\n"+
			"If you did not ask for this, ignore this e-mail: your password stays as it is.\n",
			link, int(valid.Minutes())),
	}
}

func articled(role string) string {
	if role == "admin" {
		return "an admin"
	}
	return "a " + role
}

// ConnectionBrokeMessage tells an admin (to) that the org's connection to
// provider (its title) stopped working, why (reason, the user-facing
// message the dashboard shows too; never a credential), and where to fix
// it (link).
func ConnectionBrokeMessage(to, provider, reason, link string) Message {
	return Message{
		To:      to,
		Subject: fmt.Sprintf("Your %s connection stopped working", provider),
		Text: fmt.Sprintf("BYOC checked your organization's %s connection and it failed:\n\n%s\n\n"+
			"Until it is fixed, whatever uses %s does not work. Test, update or reconnect it here:\n%s\n\n"+
			"You get this e-mail once: not again until the connection has worked and then failed anew.\n",
			provider, reason, provider, link),
	}
}
