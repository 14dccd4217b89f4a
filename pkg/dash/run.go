package dash

import (
	"context"
	"errors"
	"sync"

	tea "charm.land/bubbletea/v2"
)

// Run shows the dashboard until the user quits or ctx is done. It follows src's live events in a goroutine
// that it joins before returning. Program options (input, output, size) are for tests.
func Run(ctx context.Context, src Source, o Options, opts ...tea.ProgramOption) error {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan EventBatch, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // exits when ctx is cancelled: on quit or on a signal
		defer wg.Done()
		_ = src.Follow(ctx, ch)
	}()
	m := New(ctx, src, ch, o)
	p := tea.NewProgram(m, append([]tea.ProgramOption{tea.WithContext(ctx)}, opts...)...)
	_, err := p.Run()
	cancel()
	wg.Wait()
	if errors.Is(err, tea.ErrProgramKilled) && parent.Err() != nil {
		return nil // stopped by a signal: a normal exit
	}
	return err
}
