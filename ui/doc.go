// Package ui presents the executor's events and plans: the live view on a
// terminal (Live), timestamped plain lines (Plain), the -q story of a failure
// (Quiet), one JSON object per event (JSON), and plan. Colour is decided once,
// at the writer (NO_COLOR, not a terminal), and every text from outside is
// sanitized before it reaches a terminal.
package ui
