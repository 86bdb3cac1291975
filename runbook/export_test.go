package runbook

// SetAnswerBudget sets the run's budget for decoded answers, for tests, and
// returns what restores it.
func SetAnswerBudget(n int64) (restore func()) {
	old := answerBudget
	answerBudget = n
	return func() { answerBudget = old }
}
