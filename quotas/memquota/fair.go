package memquota

import (
	"container/heap"

	"github.com/mcpauthz/mcpauthz/quotas"
)

// pool is one fair-share pool (quotas.Share): its active tenants, how many
// of them are of each class, and the tenants in the order they go idle.
type pool struct {
	tenants map[string]*member
	classes map[quotas.ShareClass]int64
	idle    byUntil
}

// member is a tenant active in a pool.
type member struct {
	tenant string
	class  quotas.ShareClass
	tat    int64 // theoretical arrival time of its share, unix ns
	until  int64 // when it stops being active, unix ns
	index  int   // in the pool's idle heap
}

// expire drops the tenants no longer active at now and returns how many.
func (p *pool) expire(now int64) int {
	n := 0
	for len(p.idle) > 0 && p.idle[0].until <= now {
		m := heap.Pop(&p.idle).(*member)
		delete(p.tenants, m.tenant)
		if p.classes[m.class]--; p.classes[m.class] <= 0 {
			delete(p.classes, m.class)
		}
		n++
	}
	return n
}

// byUntil is a min-heap of members by the time they go idle.
type byUntil []*member

func (h byUntil) Len() int           { return len(h) }
func (h byUntil) Less(i, j int) bool { return h[i].until < h[j].until }
func (h byUntil) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *byUntil) Push(x any) {
	m := x.(*member)
	m.index = len(*h)
	*h = append(*h, m)
}
func (h *byUntil) Pop() any {
	old := *h
	m := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return m
}

// shareDraft is the tentative state of the pools one request takes from:
// nothing of it is kept unless the whole request is admitted.
type shareDraft struct {
	l     *Limiter
	now   int64
	pools map[string]*poolDraft
}

type poolDraft struct {
	classes map[quotas.ShareClass]int64
	members map[string]*memberDraft
}

type memberDraft struct {
	counted bool // among the draft's classes
	class   quotas.ShareClass
	stored  int64 // the arrival time as the limiter holds it
	tat     int64
	until   int64
}

func newShareDraft(l *Limiter, now int64) *shareDraft {
	return &shareDraft{l: l, now: now, pools: map[string]*poolDraft{}}
}

// step decides the share limit lim: the tenant joins the pool's active
// tenants in its class, and its share of the capacity (quotas.FairShare)
// sets the GCRA it steps. It returns the limit's state, that GCRA and the
// tenant's stored arrival time. Called with mu held.
func (d *shareDraft) step(lim quotas.Limit) (quotas.LimitState, quotas.GCRA, int64) {
	p := d.pool(lim.Share.Pool)
	m := p.members[lim.Key]
	if m == nil {
		m = &memberDraft{}
		if s := d.l.pools[lim.Share.Pool]; s != nil && s.tenants[lim.Key] != nil {
			e := s.tenants[lim.Key]
			m.counted, m.class, m.stored, m.tat = true, e.class, e.tat, e.tat
		}
		p.members[lim.Key] = m
	}
	class := lim.Share.Class()
	if m.counted && m.class != class {
		if p.classes[m.class]--; p.classes[m.class] <= 0 {
			delete(p.classes, m.class)
		}
		m.counted = false
	}
	if !m.counted {
		p.classes[class]++
		m.counted, m.class = true, class
	}
	counts := make([]quotas.ClassCount, 0, len(p.classes))
	for c, n := range p.classes {
		counts = append(counts, quotas.ClassCount{Class: c, Tenants: n})
	}
	g := quotas.NewShareGCRA(lim, quotas.FairShare(class, counts))
	t, st := g.Step(m.tat, d.now)
	if st.Allowed {
		m.tat, m.until = t, quotas.ShareHorizon(lim, t)
	}
	return st, g, m.stored
}

// pool returns the draft of the named pool, expiring its idle tenants
// first (an idle tenant is the same as one never seen, so that needs no
// undoing).
func (d *shareDraft) pool(name string) *poolDraft {
	if p := d.pools[name]; p != nil {
		return p
	}
	p := &poolDraft{classes: map[quotas.ShareClass]int64{}, members: map[string]*memberDraft{}}
	if s := d.l.pools[name]; s != nil {
		d.l.members -= s.expire(d.now)
		for c, n := range s.classes {
			p.classes[c] = n
		}
	}
	d.pools[name] = p
	return p
}

// fresh counts the tenants the draft would add.
func (d *shareDraft) fresh() int {
	n := 0
	for name, p := range d.pools {
		s := d.l.pools[name]
		for t := range p.members {
			if s == nil || s.tenants[t] == nil {
				n++
			}
		}
	}
	return n
}

// commit keeps the draft. Called with mu held, once every limit of the
// request admitted it.
func (d *shareDraft) commit() {
	for name, p := range d.pools {
		s := d.l.pools[name]
		if s == nil {
			s = &pool{tenants: map[string]*member{}}
			d.l.pools[name] = s
		}
		for t, m := range p.members {
			e := s.tenants[t]
			if e == nil {
				e = &member{tenant: t, class: m.class, tat: m.tat, until: m.until}
				s.tenants[t] = e
				heap.Push(&s.idle, e)
				d.l.members++
				continue
			}
			e.class, e.tat, e.until = m.class, m.tat, m.until
			heap.Fix(&s.idle, e.index)
		}
		s.classes = p.classes
		if len(s.tenants) == 0 {
			delete(d.l.pools, name)
		}
	}
}

// evictPools drops the tenants gone idle and the pools left empty. Called
// with mu held.
func (l *Limiter) evictPools(now int64) int {
	n := 0
	for name, p := range l.pools {
		k := p.expire(now)
		l.members -= k
		n += k
		if len(p.tenants) == 0 {
			delete(l.pools, name)
		}
	}
	return n
}

// shareStanding is what reports a share limit as it stands when its
// request is refused: the GCRA of the tenant's share and its stored
// arrival time.
type shareStanding struct {
	gcra quotas.GCRA
	tat  int64
}
