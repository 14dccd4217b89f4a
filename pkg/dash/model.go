package dash

import (
	"context"
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/safetext"
)

// DefaultExpectedAgents are the agent kinds a complete installation runs.
var DefaultExpectedAgents = []string{"monitor", "analyze", "respond", "alert"}

// Options configure the dashboard model.
type Options struct {
	Refresh        time.Duration // how often the snapshot is read, default 2s
	Color          bool          // false renders without colour (NO_COLOR)
	ExpectedAgents []string      // kinds counted in "agents alive", default DefaultExpectedAgents
	RedisAddr      string        // shown in the header
	MaxEvents      int           // events kept in the timeline, default 1000
	Filter         string        // initial filter of the overview, events and history views (the / filter)
	Result         string        // initial result filter of the history view: one of ResultChoices, default all
	Now            func() time.Time
	Location       *time.Location // for clock times, default time.Local
}

func (o *Options) defaults() {
	if o.Refresh <= 0 {
		o.Refresh = 2 * time.Second
	}
	if o.ExpectedAgents == nil {
		o.ExpectedAgents = DefaultExpectedAgents
	}
	if o.MaxEvents <= 0 {
		o.MaxEvents = 1000
	}
	if o.Result == "" {
		o.Result = resultChoices[0]
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Location == nil {
		o.Location = time.Local
	}
}

type viewID int

const (
	viewOverview viewID = iota
	viewEvents
	viewHistory
	viewDetail
)

var tabNames = []string{"Overview", "Events", "History"}

// ResultChoices are the history view's result filters, cycled with f; Options.Result picks the first one shown.
var ResultChoices = resultChoices

// History filter choices, cycled with f and t.
var (
	resultChoices = []string{"all", "success", "failed", "denied", "skipped", "held", "escalated", "dry_run"}
	sinceChoices  = []struct {
		name string
		d    time.Duration
	}{{"all", 0}, {"1h", time.Hour}, {"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}}
)

// Overview sort columns, cycled with s.
var sortColumns = []string{"name", "host", "state", "health", "cpu", "mem", "mode", "breaker"}

// Model is the dashboard's Bubble Tea model.
type Model struct {
	ctx    context.Context
	src    Source
	events <-chan EventBatch
	o      Options
	st     styles

	width, height int
	view, back    viewID
	help          bool
	paused        bool

	snap    Snapshot
	have    bool
	err     error
	lastOK  time.Time
	loading bool

	filtering bool
	filters   map[viewID]string
	cursor    map[viewID]int
	sortCol   int
	sortDesc  bool
	detail    string // host/name shown in the detail view

	detailAudit []audit.Entry // the detail container's newest decisions, read through its index
	detailFor   string        // the container detailAudit belongs to

	evs     []Event // newest first
	counts  map[string]int
	pending []Event // arrived while paused, oldest first
	liveErr error
	live    bool

	histResult, histSince int
	jsonOff               int // scroll offset of the selected event's JSON
}

// New returns a model reading snap shots from src and live events from events (nil: no live events).
// ctx bounds the reads it starts.
func New(ctx context.Context, src Source, events <-chan EventBatch, o Options) Model {
	o.defaults()
	return Model{
		ctx:        ctx,
		src:        src,
		events:     events,
		o:          o,
		st:         newStyles(o.Color),
		width:      80,
		height:     24,
		filters:    map[viewID]string{viewOverview: o.Filter, viewEvents: o.Filter, viewHistory: o.Filter},
		cursor:     map[viewID]int{},
		counts:     map[string]int{},
		histResult: max(slices.Index(resultChoices, o.Result), 0),
	}
}

type snapshotMsg struct {
	snap Snapshot
	err  error
}

type tickMsg struct{}

type detailAuditMsg struct {
	target  string
	entries []audit.Entry
	err     error
}

// detailDecisions is how many of a container's decisions the detail view shows.
const detailDecisions = 10

type eventsMsg struct {
	batch EventBatch
	ok    bool // false when the channel closed
}

// Init implements tea.Model: first read, refresh timer, live events.
func (m Model) Init() tea.Cmd {
	return tea.Batch(m.load(), m.tick(), m.waitEvents())
}

func (m Model) load() tea.Cmd {
	ctx, src := m.ctx, m.src
	timeout := max(m.o.Refresh*2, 3*time.Second)
	return func() tea.Msg {
		c, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		s, err := src.Snapshot(c)
		safetext.Deep(&s) // names, labels, reasons: anyone's text, never the terminal's orders
		return snapshotMsg{snap: s, err: err}
	}
}

// loadDetail reads the detail container's decisions through its audit index, so they show even when they
// are older than the trail the snapshot keeps.
func (m Model) loadDetail() tea.Cmd {
	if m.view != viewDetail || m.detail == "" {
		return nil
	}
	ctx, src, target := m.ctx, m.src, m.detail
	host, name, _ := strings.Cut(target, "/")
	timeout := max(m.o.Refresh*2, 3*time.Second)
	return func() tea.Msg {
		c, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		es, err := src.ContainerAudit(c, host, name, detailDecisions)
		safetext.Deep(&es)
		return detailAuditMsg{target: target, entries: es, err: err}
	}
}

func (m Model) tick() tea.Cmd {
	return tea.Tick(m.o.Refresh, func(time.Time) tea.Msg { return tickMsg{} })
}

func (m Model) waitEvents() tea.Cmd {
	if m.events == nil {
		return nil
	}
	ch, ctx := m.events, m.ctx
	return func() tea.Msg {
		select {
		case b, ok := <-ch:
			safetext.Deep(&b)
			return eventsMsg{batch: b, ok: ok}
		case <-ctx.Done():
			return eventsMsg{}
		}
	}
}

// Update implements tea.Model.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		return m, nil
	case tickMsg:
		cmds := []tea.Cmd{m.tick()}
		if !m.paused && !m.loading {
			m.loading = true
			cmds = append(cmds, m.load())
		}
		return m, tea.Batch(cmds...)
	case snapshotMsg:
		m.loading = false
		if msg.err != nil {
			m.err = msg.err
			return m, nil
		}
		m.err = nil
		selC, selH := m.selected()
		m.snap, m.have = msg.snap, true
		m.lastOK = m.o.Now()
		m.reselect(selC, selH)
		m.clampCursors()
		return m, m.loadDetail()
	case detailAuditMsg:
		if msg.err == nil {
			m.detailAudit, m.detailFor = msg.entries, msg.target
		}
		return m, nil
	case eventsMsg:
		if !msg.ok {
			return m, nil
		}
		m.applyBatch(msg.batch)
		return m, m.waitEvents()
	case tea.KeyPressMsg:
		return m.key(msg)
	}
	return m, nil
}

// selected returns the selected container and history entry, to keep them selected across a refresh.
func (m Model) selected() (container, entry string) {
	if rows := m.overviewRows(); len(rows) > 0 {
		container = rows[min(m.cursor[viewOverview], len(rows)-1)].Target()
	}
	if rows := m.historyRows(); len(rows) > 0 {
		e := rows[min(m.cursor[viewHistory], len(rows)-1)]
		entry = e.ID + "@" + e.Time.String()
	}
	return container, entry
}

func (m *Model) reselect(container, entry string) {
	if container != "" {
		for i, c := range m.overviewRows() {
			if c.Target() == container {
				m.cursor[viewOverview] = i
				break
			}
		}
	}
	if entry != "" && m.cursor[viewHistory] > 0 {
		for i, e := range m.historyRows() {
			if e.ID+"@"+e.Time.String() == entry {
				m.cursor[viewHistory] = i
				break
			}
		}
	}
}

func (m *Model) applyBatch(b EventBatch) {
	if b.Err != nil {
		m.liveErr, m.live = b.Err, false
		return
	}
	m.liveErr, m.live = nil, true
	if m.paused {
		m.pending = append(m.pending, b.Events...)
		if over := len(m.pending) - m.o.MaxEvents; over > 0 {
			m.pending = m.pending[over:]
		}
		return
	}
	m.addEvents(b.Events)
}

// addEvents prepends events (given oldest first), keeping the selected event selected.
func (m *Model) addEvents(evs []Event) {
	if len(evs) == 0 {
		return
	}
	var selID string
	rows := m.eventRows()
	if c := m.cursor[viewEvents]; c > 0 && c < len(rows) {
		selID = rows[c].ID
	}
	seen := make(map[string]bool, len(m.evs))
	for _, e := range m.evs {
		seen[e.Stream+e.ID] = true
	}
	add := make([]Event, 0, len(evs))
	for i := len(evs) - 1; i >= 0; i-- {
		e := evs[i]
		if e.ID != "" && seen[e.Stream+e.ID] {
			continue
		}
		m.counts[e.Type]++
		add = append(add, e)
	}
	m.evs = append(add, m.evs...)
	if len(m.evs) > m.o.MaxEvents {
		m.evs = m.evs[:m.o.MaxEvents]
	}
	if selID != "" {
		for i, e := range m.eventRows() {
			if e.ID == selID {
				m.cursor[viewEvents] = i
				break
			}
		}
	}
}

func (m Model) key(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	k := msg.String()
	if k == "ctrl+c" {
		return m, tea.Quit
	}
	if m.filtering {
		switch k {
		case "esc":
			m.filtering = false
			m.filters[m.view] = ""
		case "enter":
			m.filtering = false
		case "backspace":
			f := []rune(m.filters[m.view])
			if len(f) > 0 {
				m.filters[m.view] = string(f[:len(f)-1])
			}
		default:
			if msg.Text != "" {
				m.filters[m.view] += msg.Text
			}
		}
		m.cursor[m.view] = 0
		return m, nil
	}
	if m.help {
		switch k {
		case "q":
			return m, tea.Quit
		case "?", "esc", "enter":
			m.help = false
		}
		return m, nil
	}
	switch k {
	case "q":
		return m, tea.Quit
	case "?":
		m.help = true
	case "tab":
		m.switchTab(1)
	case "shift+tab":
		m.switchTab(-1)
	case "1", "2", "3":
		m.view = viewID(k[0] - '1')
	case "up", "k":
		m.move(-1)
	case "down", "j":
		m.move(1)
	case "pgup":
		m.move(-m.pageSize())
	case "pgdown":
		m.move(m.pageSize())
	case "home", "g":
		m.move(-1 << 30)
	case "end", "G":
		m.move(1 << 30)
	case "/":
		if m.view != viewDetail {
			m.filtering = true
		}
	case "enter":
		return m.open()
	case "esc":
		switch {
		case m.view == viewDetail:
			m.view = m.back
		case m.filters[m.view] != "":
			m.filters[m.view] = ""
			m.cursor[m.view] = 0
		}
	case "p":
		m.paused = !m.paused
		if !m.paused {
			p := m.pending
			m.pending = nil
			m.addEvents(p)
			if !m.loading {
				m.loading = true
				return m, m.load()
			}
		}
	case "r":
		if !m.loading {
			m.loading = true
			return m, m.load()
		}
	case "s":
		if m.view == viewOverview {
			m.sortCol = (m.sortCol + 1) % len(sortColumns)
		}
	case "S":
		if m.view == viewOverview {
			m.sortDesc = !m.sortDesc
		}
	case "J":
		if rows := m.eventRows(); m.view == viewEvents && len(rows) > 0 {
			sel := rows[min(m.cursor[viewEvents], len(rows)-1)]
			m.jsonOff = min(m.jsonOff+1, strings.Count(sel.Raw, ",")+2) // at most one line per JSON value
		}
	case "K":
		if m.view == viewEvents {
			m.jsonOff = max(m.jsonOff-1, 0)
		}
	case "f":
		if m.view == viewHistory {
			m.histResult = (m.histResult + 1) % len(resultChoices)
			m.cursor[viewHistory] = 0
		}
	case "t":
		if m.view == viewHistory {
			m.histSince = (m.histSince + 1) % len(sinceChoices)
			m.cursor[viewHistory] = 0
		}
	}
	return m, nil
}

func (m *Model) switchTab(d int) {
	cur := m.view
	if cur == viewDetail {
		cur = m.back
	}
	m.view = viewID((int(cur) + d + len(tabNames)) % len(tabNames))
}

func (m *Model) enter() {
	var target string
	switch m.view {
	case viewOverview:
		if rows := m.overviewRows(); len(rows) > 0 {
			target = rows[min(m.cursor[viewOverview], len(rows)-1)].Target()
		}
	case viewHistory:
		if rows := m.historyRows(); len(rows) > 0 {
			e := rows[min(m.cursor[viewHistory], len(rows)-1)]
			target = e.Host + "/" + e.Container
		}
	case viewEvents:
		if rows := m.eventRows(); len(rows) > 0 {
			e := rows[min(m.cursor[viewEvents], len(rows)-1)]
			if p := strings.SplitN(e.Incident, "/", 3); len(p) == 3 {
				target = p[0] + "/" + p[1]
			}
		}
	}
	if target == "" {
		return
	}
	m.back, m.view, m.detail = m.view, viewDetail, target
	m.cursor[viewDetail] = 0
}

// open moves to the detail view of the selected row and reads its decisions.
func (m Model) open() (Model, tea.Cmd) {
	m.enter()
	return m, m.loadDetail()
}

func (m *Model) move(d int) {
	if m.view == viewEvents && d != 0 {
		m.jsonOff = 0
	}
	n := m.rowCount()
	c := m.cursor[m.view] + d
	c = min(c, n-1)
	c = max(c, 0)
	m.cursor[m.view] = c
}

// bodyHeight is the number of lines between the header (two lines) and the footer (one).
func (m Model) bodyHeight() int { return max(m.height-3, 1) }

func (m Model) pageSize() int { return max(1, m.height/2) }

func (m Model) rowCount() int {
	switch m.view {
	case viewOverview:
		return len(m.overviewRows())
	case viewEvents:
		return len(m.eventRows())
	case viewHistory:
		return len(m.historyRows())
	case viewDetail: // the cursor is the scroll offset: stop when the last line is on screen
		return max(len(m.detailLines(m.width))-m.bodyHeight()+1, 1)
	}
	return 0
}

func (m *Model) clampCursors() {
	for _, v := range []viewID{viewOverview, viewEvents, viewHistory} {
		saved := m.view
		m.view = v
		m.move(0)
		m.view = saved
	}
}

// overviewRows are the containers after the filter, in the chosen order.
func (m Model) overviewRows() []Container {
	f := strings.ToLower(m.filters[viewOverview])
	rows := make([]Container, 0, len(m.snap.Containers))
	for _, c := range m.snap.Containers {
		if f == "" || matches(f, c.Name, c.Host, c.Image, c.State, c.Health, c.Mode) {
			rows = append(rows, c)
		}
	}
	col := sortColumns[m.sortCol]
	slices.SortStableFunc(rows, func(a, b Container) int {
		r := compareBy(col, a, b)
		if r == 0 {
			r = strings.Compare(a.Target(), b.Target())
		}
		if m.sortDesc {
			return -r
		}
		return r
	})
	return rows
}

func compareBy(col string, a, b Container) int {
	num := func(x, y float64) int {
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	}
	switch col {
	case "host":
		return strings.Compare(a.Host, b.Host)
	case "state":
		return strings.Compare(a.State, b.State)
	case "health":
		return strings.Compare(a.Health, b.Health)
	case "cpu":
		return num(cpuOf(a), cpuOf(b))
	case "mem":
		return num(memOf(a), memOf(b))
	case "mode":
		return strings.Compare(modeOf(a), modeOf(b))
	case "breaker":
		return strings.Compare(breakerOf(a), breakerOf(b))
	}
	return strings.Compare(a.Name, b.Name)
}

func cpuOf(c Container) float64 {
	if c.Sample == nil {
		return -1
	}
	return c.Sample.Metrics.CPUPercent
}

func memOf(c Container) float64 {
	if c.Sample == nil {
		return -1
	}
	return c.Sample.Metrics.MemoryPercent
}

func modeOf(c Container) string {
	if c.Mode == "" {
		return "auto"
	}
	return c.Mode
}

func breakerOf(c Container) string {
	if c.Ledger == nil {
		return "-"
	}
	return c.Ledger.Breaker
}

func matches(f string, fields ...string) bool {
	for _, s := range fields {
		if strings.Contains(strings.ToLower(s), f) {
			return true
		}
	}
	return false
}

// eventRows are the events after the filter, newest first.
func (m Model) eventRows() []Event {
	f := strings.ToLower(m.filters[viewEvents])
	if f == "" {
		return m.evs
	}
	var rows []Event
	for _, e := range m.evs {
		if matches(f, e.Type, e.Container, e.Incident) {
			rows = append(rows, e)
		}
	}
	return rows
}

// historyRows are the audit entries after the container, result and time filters, newest first.
func (m Model) historyRows() []audit.Entry {
	f := strings.ToLower(m.filters[viewHistory])
	result := resultChoices[m.histResult]
	since := sinceChoices[m.histSince].d
	now := m.o.Now()
	var rows []audit.Entry
	for _, e := range m.snap.Audit {
		if f != "" && !matches(f, e.Container, e.Host+"/"+e.Container) {
			continue
		}
		if result != "all" && e.Result != result {
			continue
		}
		if since > 0 && e.Time.Before(now.Add(-since)) {
			continue
		}
		rows = append(rows, e)
	}
	return rows
}

// detailContainer returns the container shown in the detail view.
func (m Model) detailContainer() (Container, bool) { return m.containerAt(m.detail) }
