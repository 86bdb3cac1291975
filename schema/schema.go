// Package schema holds the JSON Schema of the runbook format (draft-07, written by
// hand, with a description on every property so editors can show them).
// `runbook schema` prints it. The loader refuses everything it refuses, with
// more precise messages; package schematest checks runbooks against it, so the
// tests hold the two to one language without the binary paying a JSON Schema
// library's start-up.
package schema

import _ "embed"

// JSON is the schema document.
//
//go:embed runbook.schema.json
var JSON []byte

// URL is the schema's $id.
const URL = "https://github.com/runbookhq/runbook/schema/runbook.schema.json"
