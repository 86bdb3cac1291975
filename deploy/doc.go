// Package deploy holds no code: its directory holds the recipes for running
// runbook under a scheduler (a container image, a Kubernetes CronJob, a systemd
// timer; docs/operations.md), and its tests hold those manifests to the code,
// above all to the exit codes in runbook/exitcodes.go.
package deploy
