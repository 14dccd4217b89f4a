package containers

import "time"

// SetClock sets the clock of the table's refresh.
func SetClock(s *Store, now func() time.Time) { s.now = now }

// RefreshEvery is refreshEvery, for tests.
const RefreshEvery = refreshEvery
