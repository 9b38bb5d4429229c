package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/app"
)

// Queries of the assistant_org_mapping and outbound_agent_config aggregates.
// Every method runs as the org except ResolveAssistant, which runs as
// service_role because a webhook names an assistant before anyone knows the
// org. Writes publish a cache invalidation for the org (provider "vapi").

const mappingColumns = `vapi_assistant_id, org_id::text, assistant_role, coalesce(name, ''), created_at, last_used_at`

func scanMapping(row pgx.Row) (app.AssistantMapping, error) {
	var m app.AssistantMapping
	var role string
	err := row.Scan(&m.VapiAssistantID, &m.OrgID, &role, &m.Name, &m.CreatedAt, &m.LastUsedAt)
	m.Role = app.AssistantRole(role)
	return m, err
}

// AssistantMappings returns the org's mapped assistants (at most one per
// role), inbound first. It never returns nil.
func (d *DB) AssistantMappings(ctx context.Context, orgID string) ([]app.AssistantMapping, error) {
	out := []app.AssistantMapping{}
	err := d.InOrg(ctx, orgID, "", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `select `+mappingColumns+` from assistant_org_mapping
			where org_id = $1 order by assistant_role`, orgID)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.AssistantMapping, error) { return scanMapping(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("db: assistant mappings: %w", err)
	}
	return out, nil
}

// SaveAssistantMapping records m as the org's assistant for m.Role,
// replacing the previous one of that role. An assistant id that is already
// mapped to another org gives EConflict (and changes nothing).
func (d *DB) SaveAssistantMapping(ctx context.Context, m app.AssistantMapping) error {
	err := d.InOrg(ctx, m.OrgID, "", func(tx pgx.Tx) error {
		if err := upsertAssistantMapping(ctx, tx, m); err != nil {
			return err
		}
		return notifyCache(ctx, tx, m.OrgID, string(app.Vapi))
	})
	var e *app.Error
	if err != nil && !errors.As(err, &e) {
		return fmt.Errorf("db: save assistant mapping: %w", err)
	}
	return err
}

// DeleteAssistantMappings removes every assistant mapping of the org and
// returns the assistant ids it removed.
func (d *DB) DeleteAssistantMappings(ctx context.Context, orgID string) ([]string, error) {
	var ids []string
	err := d.InOrg(ctx, orgID, "", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `delete from assistant_org_mapping where org_id = $1 returning vapi_assistant_id`, orgID)
		if err != nil {
			return err
		}
		if ids, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		return notifyCache(ctx, tx, orgID, string(app.Vapi))
	})
	if err != nil {
		return nil, fmt.Errorf("db: delete assistant mappings: %w", err)
	}
	return ids, nil
}

// ResolveAssistant returns the mapping of a Vapi assistant id across all
// orgs. It returns ENotFound when no org has that assistant.
func (d *DB) ResolveAssistant(ctx context.Context, assistantID string) (app.AssistantMapping, error) {
	var m app.AssistantMapping
	err := d.AsService(ctx, func(tx pgx.Tx) error {
		var err error
		m, err = scanMapping(tx.QueryRow(ctx, `select `+mappingColumns+` from assistant_org_mapping
			where vapi_assistant_id = $1`, assistantID))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return app.AssistantMapping{}, app.Errorf(app.ENotFound, "Unknown assistant.")
	}
	if err != nil {
		return app.AssistantMapping{}, fmt.Errorf("db: resolve assistant: %w", err)
	}
	return m, nil
}

// TouchAssistant sets last_used_at of the org's assistant to at, unless it
// was already set within the minute before at, so a busy assistant costs at
// most one write a minute. It runs as the org and reports whether it wrote:
// an assistant of another org, or none, is left alone (false, nil). An
// invalid org id gives ErrNoOrg in the chain.
func (d *DB) TouchAssistant(ctx context.Context, orgID, assistantID string, at time.Time) (bool, error) {
	var n int64
	err := d.InOrg(ctx, orgID, "", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `update assistant_org_mapping set last_used_at = $3
			where vapi_assistant_id = $2 and org_id = $1
				and (last_used_at is null or last_used_at < $3::timestamptz - interval '1 minute')`,
			orgID, assistantID, at)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("db: touch assistant: %w", err)
	}
	return n > 0, nil
}

// SaveOutboundAgent records the org's outbound assistant and the number it
// calls from. An empty field leaves the stored value as it is.
func (d *DB) SaveOutboundAgent(ctx context.Context, a app.OutboundAgent) error {
	err := d.InOrg(ctx, a.OrgID, "", func(tx pgx.Tx) error {
		return upsertOutboundAgent(ctx, tx, a)
	})
	if err != nil {
		return fmt.Errorf("db: save outbound agent: %w", err)
	}
	return nil
}

// OutboundAgent returns the org's outbound set-up, or ENotFound.
func (d *DB) OutboundAgent(ctx context.Context, orgID string) (app.OutboundAgent, error) {
	var a app.OutboundAgent
	err := d.InOrg(ctx, orgID, "", func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `select org_id::text, coalesce(vapi_assistant_id, ''), coalesce(phone_number, ''), updated_at
			from outbound_agent_config where org_id = $1`, orgID).Scan(&a.OrgID, &a.VapiAssistantID, &a.PhoneNumber, &a.UpdatedAt)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return app.OutboundAgent{}, app.Errorf(app.ENotFound, "No outbound agent is set up.")
	}
	if err != nil {
		return app.OutboundAgent{}, fmt.Errorf("db: outbound agent: %w", err)
	}
	return a, nil
}

// ClearOutboundAssistant forgets the org's outbound assistant (after Vapi is
// disconnected), keeping the phone number.
func (d *DB) ClearOutboundAssistant(ctx context.Context, orgID string) error {
	err := d.InOrg(ctx, orgID, "", func(tx pgx.Tx) error { return clearOutboundAssistant(ctx, tx, orgID) })
	if err != nil {
		return fmt.Errorf("db: clear outbound assistant: %w", err)
	}
	return nil
}

func clearOutboundAssistant(ctx context.Context, tx pgx.Tx, orgID string) error {
	_, err := tx.Exec(ctx, `update outbound_agent_config set vapi_assistant_id = null, updated_at = now() where org_id = $1`, orgID)
	return err
}
