package dash

import (
	"context"
	"testing"
)

func TestOptionsStartWithFilters(t *testing.T) {
	m := New(context.Background(), nil, nil, Options{Filter: "web", Result: "failed"})
	for _, v := range []viewID{viewOverview, viewEvents, viewHistory} {
		if m.filters[v] != "web" {
			t.Errorf("view %d starts with filter %q, want web", v, m.filters[v])
		}
	}
	if got := resultChoices[m.histResult]; got != "failed" {
		t.Errorf("history starts with result %q, want failed", got)
	}
	if m := New(context.Background(), nil, nil, Options{}); m.filters[viewOverview] != "" || resultChoices[m.histResult] != "all" {
		t.Errorf("zero options: filter %q, result %q", m.filters[viewOverview], resultChoices[m.histResult])
	}
}
