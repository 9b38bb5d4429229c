package app

// The old platform's tables, as a backfill reads them, and the rows a
// backfill adds to BYOC's. Nothing read from the old tables is trusted: the
// backfill checks every field before it becomes a config or a mapping.

// LegacyIntegration is one row of the old platform's integrations table.
type LegacyIntegration struct {
	// OrgID and Provider are the row's columns as text ("" for NULL).
	OrgID, Provider string
	// Config is encrypted_config as stored: hex(iv):hex(tag):hex(ciphertext)
	// under the old service's key, or plain JSON. It holds secrets.
	Config Secret
}

// LegacyAgent is one row of the old platform's agents table.
type LegacyAgent struct {
	// OrgID and AssistantID are the row's columns as text ("" for NULL);
	// Role is "" when the table has no role column or the row none.
	OrgID, AssistantID, Role string
}

// ImportItem names one thing of an org a backfill brings over: a
// provider's credentials (Kind "credentials", Item the provider) or an
// assistant mapping (Kind "assistant", Item the role). Once an item is
// recorded as imported, later runs leave it alone, whatever became of it
// since (an admin may have replaced or disconnected it).
type ImportItem struct {
	OrgID, Kind, Item string
}

// Import item kinds.
const (
	ImportCredentials = "credentials"
	ImportAssistant   = "assistant"
)

// ImportRows are the rows one batch of a backfill adds: credentials already
// sealed for their rows, assistant mappings, the outbound agent fields to
// fill in, and the items to record as imported (those added now and those
// found already in place).
type ImportRows struct {
	Credentials []CredentialRecord
	Mappings    []AssistantMapping
	// Outbound fills only the fields of the org's outbound agent set-up
	// that are empty.
	Outbound []OutboundAgent
	Items    []ImportItem
}

// ImportState is what BYOC's database holds that a batch of a backfill
// must respect: which of its orgs exist, their stored credentials, the
// mappings of their assistants (and of the assistant ids the batch names,
// whatever their org) and the items already imported.
type ImportState struct {
	Orgs        []string
	Credentials []CredentialRecord
	Mappings    []AssistantMapping
	Items       []ImportItem
}
