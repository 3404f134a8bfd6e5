package main

import (
	"container/heap"
	"sync"
	"time"
)

// dueQueue is the controller's work queue reduced to what the case needs: AnalysisRuns by due time, handed
// out no earlier than due, in due order.
type dueQueue struct {
	mu    sync.Mutex
	items dueHeap
	wake  chan struct{}
}

type dueItem struct {
	run int
	due time.Time
}

type dueHeap []dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func newDueQueue() *dueQueue { return &dueQueue{wake: make(chan struct{}, 1)} }

func (q *dueQueue) push(run int, due time.Time) {
	q.mu.Lock()
	heap.Push(&q.items, dueItem{run, due})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop waits for the earliest item to be due and takes it; false once nothing is due before end.
func (q *dueQueue) pop(end time.Time) (int, time.Time, bool) {
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			q.mu.Unlock()
			if time.Now().After(end) {
				return 0, time.Time{}, false
			}
			select {
			case <-q.wake:
			case <-time.After(time.Until(end)):
			}
			continue
		}
		next := q.items[0]
		if !next.due.Before(end) {
			q.mu.Unlock()
			return 0, time.Time{}, false
		}
		if wait := time.Until(next.due); wait > 0 {
			q.mu.Unlock()
			select {
			case <-q.wake:
			case <-time.After(wait):
			}
			continue
		}
		heap.Pop(&q.items)
		q.mu.Unlock()
		return next.run, next.due, true
	}
}
