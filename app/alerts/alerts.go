// Package alerts tells an org's admins when one of its connections breaks:
// each admin gets one e-mail naming the provider and the reason, through
// the platform's mailer. That it is once per break is decided by the
// credential store (see credentials.BreakNotifier); this package only
// delivers. No message ever carries a credential: the reason is the
// user-facing message the dashboard shows.
package alerts

import (
	"context"
	"log/slog"
	"strings"

	"byoc/app"
	"byoc/app/mail"
	"byoc/app/paths"
)

// Admins lists the e-mail addresses of an org's admins; *db.DB implements
// it.
type Admins interface {
	OrgAdminEmails(ctx context.Context, orgID string) ([]string, error)
}

// Options tunes New.
type Options struct {
	// PublicURL is the server's address; the message links the dashboard.
	PublicURL string
	// Logger receives a line per notice and per failure (never a secret;
	// nil discards).
	Logger *slog.Logger
}

// Notifier mails an org's admins about a broken connection. It is safe for
// concurrent use.
type Notifier struct {
	admins Admins
	mailer mail.Mailer
	link   string
	log    *slog.Logger
}

// New returns a Notifier that finds admins in admins and sends through
// mailer.
func New(admins Admins, mailer mail.Mailer, opts Options) *Notifier {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{admins: admins, mailer: mailer, link: strings.TrimRight(opts.PublicURL, "/") + paths.Dashboard,
		log: log.With("component", "alerts")}
}

// ConnectionBroke mails every admin of the org that its connection to p
// stopped working because of reason. A server that cannot send mail logs
// that the notice went nowhere; a message that fails is logged and not
// retried (the dashboard shows the same).
func (n *Notifier) ConnectionBroke(ctx context.Context, orgID string, p app.Provider, reason string) {
	spec, err := app.Describe(p)
	if err != nil {
		n.log.ErrorContext(ctx, "break notice for an unknown provider", "org_id", orgID, "provider", p)
		return
	}
	if !n.mailer.Enabled() {
		n.log.WarnContext(ctx, "connection broke; no e-mail sent (this server sends none)", "org_id", orgID, "provider", p)
		return
	}
	emails, err := n.admins.OrgAdminEmails(ctx, orgID)
	if err != nil {
		n.log.ErrorContext(ctx, "break notice: reading the org's admins failed", "org_id", orgID, "provider", p, "err", err)
		return
	}
	if strings.TrimSpace(reason) == "" {
		reason = spec.Title + " refused the stored credentials."
	}
	sent := 0
	for _, to := range emails {
		if err := n.mailer.Send(ctx, mail.ConnectionBrokeMessage(to, spec.Title, reason, n.link)); err != nil {
			n.log.WarnContext(ctx, "break notice not sent", "org_id", orgID, "provider", p, "code", app.ErrorCode(err))
			continue
		}
		sent++
	}
	n.log.InfoContext(ctx, "break notice sent", "org_id", orgID, "provider", p, "admins", len(emails), "sent", sent)
}
