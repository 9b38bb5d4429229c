// Command smoke goes through BYOC's JSON API end to end, as a new customer
// would, against a running server: health, signup, the status, saving,
// testing and disconnecting each key provider (Vapi, Twilio, Resend,
// ElevenLabs), a webhook signed as Vapi signs it (and a forged one, which
// must be refused), and Google Calendar's sign-in: finished, tested and
// disconnected when it leads to the stand-in of `byoc demo`, only started
// against Google itself (consent there takes a person). It stops at the
// first step that does not answer as expected and exits 1.
//
//	go run ./e2e/smoke -url http://127.0.0.1:3000   (or: make smoke URL=...)
//
// Against `byoc demo` the generated credentials suit the stand-ins. Against
// real providers, give real ones in the environment as SMOKE_<PROVIDER>_<FIELD>
// (SMOKE_VAPI_APIKEY, SMOKE_VAPI_WEBHOOKSECRET, SMOKE_TWILIO_ACCOUNTSID,
// SMOKE_TWILIO_AUTHTOKEN, SMOKE_TWILIO_PHONENUMBER, SMOKE_RESEND_APIKEY,
// SMOKE_RESEND_FROMEMAIL, SMOKE_ELEVENLABS_APIKEY): a provider with any of
// them set uses exactly the ones set. Each run signs up a new org. It
// never prints a credential, the password or the token.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	base := flag.String("url", "", "the server's base URL, such as http://127.0.0.1:3000")
	timeout := flag.Duration("timeout", 2*time.Minute, "the longest the whole run may take")
	flag.Parse()
	if *base == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: smoke -url http://host:port")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := Run(ctx, Options{BaseURL: *base, Values: valuesFromEnv(os.Environ()), Out: os.Stdout}); err != nil {
		fmt.Fprintln(os.Stderr, "smoke:", err)
		os.Exit(1)
	}
}

// fieldNames maps the upper-cased field names of the environment to the
// API's.
var fieldNames = map[string]string{
	"APIKEY": "apiKey", "WEBHOOKSECRET": "webhookSecret", "REGION": "region",
	"ACCOUNTSID": "accountSid", "AUTHTOKEN": "authToken", "PHONENUMBER": "phoneNumber", "WHATSAPPNUMBER": "whatsappNumber",
	"FROMEMAIL": "fromEmail", "VOICEID": "voiceId",
}

// valuesFromEnv reads SMOKE_<PROVIDER>_<FIELD> variables from env.
func valuesFromEnv(env []string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		rest, ok := strings.CutPrefix(name, "SMOKE_")
		if !ok || value == "" {
			continue
		}
		for _, p := range keyProviders {
			field, ok := strings.CutPrefix(rest, strings.ToUpper(p)+"_")
			if api := fieldNames[field]; ok && api != "" {
				if out[p] == nil {
					out[p] = map[string]string{}
				}
				out[p][api] = value
			}
		}
	}
	return out
}
