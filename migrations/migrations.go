// Package migrations embeds the numbered SQL migrations (goose format: each
// file has an Up and a Down section). The db package applies them.
package migrations

import "embed"

// FS holds every *.sql migration, in file-name order.
//
//go:embed *.sql
var FS embed.FS
