package cmd

import (
	"github.com/hemostat/hemostat/pkg/respond"
	"github.com/hemostat/hemostat/pkg/store"
)

// respondStores are the responder's bodies of state over this process's stores.
func respondStores(st *store.Store) respond.Stores {
	return respond.Stores{Ledger: st.Ledger, Incidents: st.Incidents, Hosts: st.Containers}
}
