package runbook

// SyncFile is what a journal writes to.
type SyncFile = syncFile

// WrapJournalFile puts a test between a journal and its file: to fail its
// writes (a full disk), or to stop the world after a given record (a crash).
func WrapJournalFile(j *Journal, wrap func(SyncFile) SyncFile) { j.f = wrap(j.f) }
