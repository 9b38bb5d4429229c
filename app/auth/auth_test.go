package auth_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"byoc/app"
	"byoc/app/auth"
	"byoc/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

func newService(t *testing.T, cost int) *auth.Service {
	t.Helper()
	tk, err := auth.NewTokens(testSecret, auth.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return auth.NewService(dbtest.DB(t), tk, auth.Options{BcryptCost: cost})
}

func uniqueEmail() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "Owner." + hex.EncodeToString(b[:]) + "@Example.com"
}

const goodPassword = "correct horse battery"

func TestSignupValidation(t *testing.T) {
	svc := newService(t, bcrypt.MinCost)
	ok := auth.SignupInput{OrgName: "Acme", Email: "a@example.com", Password: goodPassword}
	tests := []struct {
		name  string
		in    func(auth.SignupInput) auth.SignupInput
		field string
	}{
		{"empty org", func(in auth.SignupInput) auth.SignupInput { in.OrgName = "  "; return in }, "orgName"},
		{"org of 101 characters", func(in auth.SignupInput) auth.SignupInput { in.OrgName = strings.Repeat("é", 101); return in }, "orgName"},
		{"org with a control character", func(in auth.SignupInput) auth.SignupInput { in.OrgName = "Acme\x00"; return in }, "orgName"},
		{"empty email", func(in auth.SignupInput) auth.SignupInput { in.Email = ""; return in }, "email"},
		{"email without @", func(in auth.SignupInput) auth.SignupInput { in.Email = "acme.example.com"; return in }, "email"},
		{"email with a display name", func(in auth.SignupInput) auth.SignupInput { in.Email = "Bob <bob@example.com>"; return in }, "email"},
		{"email of 255 bytes", func(in auth.SignupInput) auth.SignupInput {
			in.Email = strings.Repeat("a", 243) + "@example.com"
			return in
		}, "email"},
		{"empty password", func(in auth.SignupInput) auth.SignupInput { in.Password = ""; return in }, "password"},
		{"password of 11 characters", func(in auth.SignupInput) auth.SignupInput { in.Password = "abcdefghijk"; return in }, "password"},
		{"password of 11 characters in 22 bytes", func(in auth.SignupInput) auth.SignupInput { in.Password = strings.Repeat("é", 11); return in }, "password"},
		{"password of 73 bytes", func(in auth.SignupInput) auth.SignupInput { in.Password = strings.Repeat("a", 73); return in }, "password"},
		{"password of 40 characters in 80 bytes", func(in auth.SignupInput) auth.SignupInput { in.Password = strings.Repeat("é", 40); return in }, "password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.Signup(context.Background(), tt.in(ok))
			if code := app.ErrorCode(err); code != app.EValidation {
				t.Fatalf("code %q (%v), want %q", code, err, app.EValidation)
			}
			fields := app.ErrorFields(err)
			if fields[tt.field] == "" || len(fields) != 1 {
				t.Fatalf("fields %v, want exactly one message for %q", fields, tt.field)
			}
		})
	}

	// NIST SP 800-63B: a password from a list of common and breached ones,
	// or one containing the email's name or the org's, is refused with a
	// message that says why.
	why := []struct {
		name, orgName, email, password, want string
	}{
		{"on the common list", "Acme", "a@example.com", "password1234", "commonly used"},
		{"one letter repeated, on the common list", "Acme", "a@example.com", "aaaaaaaaaaaa", "commonly used"},
		{"on the common list in another case", "Acme", "a@example.com", "PassWord1234", "commonly used"},
		{"the email's local part", "Acme", "Dr.Jane.Doe@example.com", "dr-jane-doe-rocks!", "email address"},
		{"the email's local part before a +", "Acme", "jane+byoc@example.com", "JANE and her 12 cats", "email address"},
		{"the org's name", "Acme Dental", "a@example.com", "AcmeDental-forever", "organization's name"},
		{"the org's name in another script", "Ünïcode Clinic", "a@example.com", "ünïcode-clinic-2025", "organization's name"},
	}
	for _, tt := range why {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.Signup(context.Background(), auth.SignupInput{OrgName: tt.orgName, Email: tt.email, Password: tt.password})
			if code := app.ErrorCode(err); code != app.EValidation {
				t.Fatalf("code %q (%v), want %q", code, err, app.EValidation)
			}
			fields := app.ErrorFields(err)
			if len(fields) != 1 || !strings.Contains(fields["password"], tt.want) {
				t.Fatalf("fields %v, want only a password message saying %q", fields, tt.want)
			}
			if strings.Contains(fields["password"], tt.password) {
				t.Fatalf("the message repeats the password: %q", fields["password"])
			}
		})
	}

	t.Run("all fields at once", func(t *testing.T) {
		_, err := svc.Signup(context.Background(), auth.SignupInput{})
		fields := app.ErrorFields(err)
		for _, f := range []string{"orgName", "email", "password"} {
			if fields[f] == "" {
				t.Errorf("no message for %q in %v", f, fields)
			}
		}
	})
	t.Run("edges accepted", func(t *testing.T) {
		in := auth.SignupInput{OrgName: "  " + strings.Repeat("x", 100) + " ", Email: " " + uniqueEmail() + " ", Password: strings.Repeat("a", 72)}
		if _, err := svc.Signup(context.Background(), in); err != nil {
			t.Fatal(err)
		}
		in = auth.SignupInput{OrgName: "é", Email: uniqueEmail(), Password: strings.Repeat("é", 12)}
		if _, err := svc.Signup(context.Background(), in); err != nil {
			t.Fatal(err)
		}
		// Names of fewer than three letters and digits do not count.
		_, domain, _ := strings.Cut(uniqueEmail(), ".")
		in = auth.SignupInput{OrgName: "A&B", Email: "jo@" + strings.Replace(domain, "@", ".", 1), Password: "ab jo ab jo ab jo"}
		if _, err := svc.Signup(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSignupLoginLogout(t *testing.T) {
	svc := newService(t, bcrypt.MinCost)
	ctx := context.Background()
	email := uniqueEmail()

	acct, err := svc.Signup(ctx, auth.SignupInput{OrgName: "  Acme Dental  ", Email: email, Password: goodPassword})
	if err != nil {
		t.Fatal(err)
	}
	p := acct.Principal
	if p.Email != strings.ToLower(email) || p.Role != app.RoleAdmin || acct.OrgName != "Acme Dental" || acct.SessionVersion != 1 {
		t.Fatalf("Signup: %+v", acct)
	}

	_, err = svc.Signup(ctx, auth.SignupInput{OrgName: "Again", Email: strings.ToUpper(email), Password: goodPassword})
	if code := app.ErrorCode(err); code != app.EEmailTaken {
		t.Fatalf("second signup: code %q, want %q", code, app.EEmailTaken)
	}

	login, err := svc.Login(ctx, "  "+strings.ToUpper(email), goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if login != acct {
		t.Fatalf("Login: %+v, want %+v", login, acct)
	}

	resolved, err := svc.ResolveSession(ctx, p.UserID, p.OrgID, acct.SessionVersion)
	if err != nil || resolved != acct {
		t.Fatalf("ResolveSession: %+v %v", resolved, err)
	}
	tok, err := svc.IssueToken(acct)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := svc.ResolveToken(ctx, tok.Value); err != nil || got != acct {
		t.Fatalf("ResolveToken: %+v %v", got, err)
	}

	if err := svc.Logout(ctx, p.UserID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ResolveSession(ctx, p.UserID, p.OrgID, acct.SessionVersion); app.ErrorCode(err) != app.EUnauthorized {
		t.Fatalf("ResolveSession after logout: %v, want unauthorized", err)
	}
	if _, err := svc.ResolveToken(ctx, tok.Value); app.ErrorCode(err) != app.EUnauthorized {
		t.Fatalf("ResolveToken after logout: %v, want unauthorized", err)
	}
	again, err := svc.Login(ctx, email, goodPassword)
	if err != nil || again.SessionVersion != 2 {
		t.Fatalf("Login after logout: %+v %v", again, err)
	}
	if _, err := svc.ResolveSession(ctx, p.UserID, p.OrgID, again.SessionVersion); err != nil {
		t.Fatalf("ResolveSession of the new login: %v", err)
	}
	const otherOrg = "00000000-0000-4000-8000-000000000000"
	if _, err := svc.ResolveSession(ctx, p.UserID, otherOrg, again.SessionVersion); app.ErrorCode(err) != app.EUnauthorized {
		t.Fatalf("ResolveSession in an org the user is not in: %v, want unauthorized", err)
	}
}

func TestLoginRefusals(t *testing.T) {
	svc := newService(t, bcrypt.MinCost)
	ctx := context.Background()
	email := uniqueEmail()
	if _, err := svc.Signup(ctx, auth.SignupInput{OrgName: "Acme", Email: email, Password: goodPassword}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, email, password, code string
	}{
		{"wrong password", email, goodPassword + "!", app.EInvalidCredentials},
		{"unknown email", "nobody." + email, goodPassword, app.EInvalidCredentials},
		{"password of 73 bytes", email, goodPassword + strings.Repeat("x", 73), app.EInvalidCredentials},
		{"email of 300 bytes", strings.Repeat("a", 300) + email, goodPassword, app.EInvalidCredentials},
		{"empty email", "", goodPassword, app.EValidation},
		{"empty password", email, "", app.EValidation},
	}
	var message string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.Login(ctx, tt.email, tt.password)
			if code := app.ErrorCode(err); code != tt.code {
				t.Fatalf("code %q (%v), want %q", code, err, tt.code)
			}
			if tt.code != app.EInvalidCredentials {
				return
			}
			// Unknown emails and wrong passwords must read the same.
			if message == "" {
				message = app.ErrorMessage(err)
			} else if got := app.ErrorMessage(err); got != message {
				t.Fatalf("message %q differs from %q", got, message)
			}
		})
	}
}

// TestLoginUnknownEmailTakesAsLong checks that an unknown email still costs a
// bcrypt comparison, so timing does not reveal which emails have accounts.
func TestLoginUnknownEmailTakesAsLong(t *testing.T) {
	svc := newService(t, 10)
	ctx := context.Background()
	email := uniqueEmail()
	if _, err := svc.Signup(ctx, auth.SignupInput{OrgName: "Acme", Email: email, Password: goodPassword}); err != nil {
		t.Fatal(err)
	}
	measure := func(email string) time.Duration {
		best := time.Hour
		for range 3 {
			start := time.Now()
			_, _ = svc.Login(ctx, email, "wrong password!")
			best = min(best, time.Since(start))
		}
		return best
	}
	known, unknown := measure(email), measure("nobody."+email)
	if unknown < known/3 {
		t.Fatalf("unknown email took %v, known email with a wrong password %v", unknown, known)
	}
}
