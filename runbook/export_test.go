package runbook

// SyncFile is what a journal writes to.
type SyncFile = syncFile

// WrapJournalFile puts a test between a journal and its file: to fail its
// writes (a full disk), or to stop the world after a given record (a crash).
func WrapJournalFile(j *Journal, wrap func(SyncFile) SyncFile) { j.f = wrap(j.f) }

// SetAnswerBudget sets the run's budget for decoded answers, for tests, and
// returns what restores it.
func SetAnswerBudget(n int64) (restore func()) {
	old := answerBudget
	answerBudget = n
	return func() { answerBudget = old }
}
