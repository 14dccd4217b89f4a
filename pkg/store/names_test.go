package store_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store"
)

func TestContainerTargetsAndOpenIncidentKeys(t *testing.T) {
	c, rdb := containersStore(t)
	ctx := context.Background()
	if got, err := c.ContainerTargets(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v, %v", got, err)
	}
	if err := c.WriteContainers(ctx, "h2", map[string][]byte{"h2/db": []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteContainers(ctx, "h1", map[string][]byte{"h1/web": []byte("{}"), "h1/api": []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	got, err := c.ContainerTargets(ctx)
	if d := cmp.Diff([]string{"h1/api", "h1/web", "h2/db"}, got); err != nil || d != "" {
		t.Errorf("ContainerTargets (-want +got): %v\n%s", err, d)
	}
	for target, want := range map[string]bool{"h1/web": true, "h2/db": true, "h1/db": false} {
		if ok, err := c.HasContainer(ctx, target); err != nil || ok != want {
			t.Errorf("HasContainer(%s) = %v, %v; want %v", target, ok, err, want)
		}
	}
	for _, in := range []store.Incident{{Key: "h1/web/crashed", Host: "h1", Container: "web"}, {Key: "h2/db/oom_killed", Host: "h2", Container: "db"}} {
		if err := c.OpenIncident(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := c.OpenIncidentKeys(ctx)
	if err != nil || len(keys) != 2 {
		t.Errorf("OpenIncidentKeys = %v, %v", keys, err)
	}
	if n := rdb.HLen(ctx, event.KeyContainers).Val(); n != 3 {
		t.Errorf("the reads wrote: %d containers", n)
	}
}
