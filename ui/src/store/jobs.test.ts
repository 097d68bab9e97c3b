import { describe, expect, it } from 'vitest';
import { job, jobsNewestFirst } from '../test/fixtures';
import { JobStore, type Transition } from './jobs';

function makeStore(tab: 'all' | 'active' | 'completed' = 'all') {
  let t = 0;
  const store = new JobStore({ tab, q: '' }, () => t);
  return { store, tick: (ms = 1) => (t += ms) };
}

describe('JobStore', () => {
  it('a progress event notifies only its own row, not the list', () => {
    const { store } = makeStore();
    const jobs = jobsNewestFirst(1000);
    store.applyFirstPage(jobs, null, { tab: 'all', q: '' }, 0, true);
    const calls = new Map<string, number>();
    for (const j of jobs) store.subscribeJob(j.jobId, () => calls.set(j.jobId, (calls.get(j.jobId) ?? 0) + 1));
    let listCalls = 0;
    store.subscribeList(() => listCalls++);

    const target = jobs[500]!;
    store.applyEvents([
      { kind: 'progress', data: { jobId: target.jobId, stage: 'downloading', progress: 50, speed: 9, eta: 3, totalBytes: 1 } },
    ]);
    expect([...calls.entries()]).toEqual([[target.jobId, 1]]);
    expect(listCalls).toBe(0);
    expect(store.get(target.jobId)!.progress).toBe(50);
  });

  it('keeps the list to the jobs that match the filter', () => {
    const { store } = makeStore('active');
    const [a, b] = jobsNewestFirst(2, { status: 'running' });
    store.applyFirstPage([a!, b!], null, { tab: 'active', q: '' }, 0, true);
    store.applyEvents([{ kind: 'completed', data: { jobId: a!.jobId, filename: 'a', size: 1, outputPath: null } }]);
    expect(store.getList().ids).toEqual([b!.jobId]);
    // Back to running (a retry elsewhere): it comes back, in its place.
    store.applyEvents([{ kind: 'job-update', data: { jobId: a!.jobId, status: 'running', stage: 'downloading', progress: 0 } }]);
    expect(store.getList().ids).toEqual([a!.jobId, b!.jobId]);
  });

  it('reports status changes (for the toasts), from events and from REST', () => {
    const { store, tick } = makeStore();
    const a = job({ status: 'running' });
    const b = job({ status: 'running' });
    store.applyFirstPage([a, b], null, { tab: 'all', q: '' }, 0, true);
    const seen: Transition[] = [];
    store.onTransition((t) => seen.push(t));
    tick(10);
    store.applyEvents([{ kind: 'failed', data: { jobId: a.jobId, errorCode: 'network', message: 'refused' } }]);
    store.applyFirstPage([a, { ...b, status: 'completed', progress: 100 }], null, { tab: 'all', q: '' }, 5);
    expect(seen.map((t) => [t.job.jobId, t.from, t.to])).toEqual([
      [a.jobId, 'running', 'failed'],
      [b.jobId, 'running', 'completed'],
    ]);
    // The page asked before the failed event came: the old "running" does not win.
    expect(store.get(a.jobId)!.status).toBe('failed');
  });

  it('tells the end of a job it had not seen yet, once, when the job arrives', () => {
    const { store } = makeStore();
    store.applyFirstPage([], null, { tab: 'all', q: '' }, 0, true);
    const seen: Transition[] = [];
    store.onTransition((t) => seen.push(t));
    const quick = job({ status: 'completed', progress: 100 });
    const result = store.applyEvents([
      { kind: 'completed', data: { jobId: quick.jobId, filename: 'a.mp4', size: 1, outputPath: 'x/a.mp4' } },
    ]);
    expect(result.unknown).toEqual([quick.jobId]);
    store.upsert(quick);
    store.upsert(quick);
    expect(seen.map((t) => [t.job.jobId, t.to])).toEqual([[quick.jobId, 'completed']]);
    // A finished job the page merely loads (no event about it) is no news.
    const old = job({ status: 'failed' });
    store.upsert(old);
    expect(seen).toHaveLength(1);
  });

  it('tells the end of a job heard of live whose answer came after its end, before its end event', () => {
    const { store } = makeStore();
    store.applyFirstPage([], null, { tab: 'all', q: '' }, 0, true);
    const seen: Transition[] = [];
    store.onTransition((t) => seen.push(t));
    const quick = job({ status: 'completed', progress: 100 });
    const created = store.applyEvents([
      { kind: 'job-update', data: { jobId: quick.jobId, status: 'queued', stage: 'queued', progress: null } },
    ]);
    expect(created.unknown).toEqual([quick.jobId]);
    // The answer to the page's GET shows it done; the events of its end are still on the way.
    store.upsert(quick);
    expect(seen).toHaveLength(0);
    store.applyEvents([
      { kind: 'completed', data: { jobId: quick.jobId, filename: 'a.mp4', size: 1, outputPath: 'x/a.mp4' } },
      { kind: 'job-update', data: { jobId: quick.jobId, status: 'completed', stage: 'finalizing', progress: 100 } },
    ]);
    expect(seen.map((t) => [t.job.jobId, t.from, t.to])).toEqual([[quick.jobId, 'running', 'completed']]);
    // A job the page merely loads is no news, even when an end event about it comes.
    const old = job({ status: 'failed' });
    store.upsert(old);
    store.applyEvents([{ kind: 'failed', data: { jobId: old.jobId, errorCode: 'network', message: 'refused' } }]);
    expect(seen).toHaveLength(1);
  });

  it('ignores a page for a filter that is no longer shown', () => {
    const { store } = makeStore();
    store.setFilter({ tab: 'completed', q: '' });
    store.applyFirstPage([job()], null, { tab: 'all', q: '' }, 0, true);
    expect(store.getList().ids).toEqual([]);
    expect(store.getList().loaded).toBe(false);
  });

  it('a 409 status and a delete', () => {
    const { store } = makeStore();
    const a = job({ status: 'running' });
    store.applyFirstPage([a], null, { tab: 'all', q: '' }, 0, true);
    store.setStatus(a.jobId, 'completed');
    expect(store.get(a.jobId)!.status).toBe('completed');
    store.remove(a.jobId);
    expect(store.get(a.jobId)).toBeUndefined();
    expect(store.getList().ids).toEqual([]);
  });

  it('reports events for jobs it does not know', () => {
    const { store } = makeStore();
    const r = store.applyEvents([
      { kind: 'job-update', data: { jobId: 'x', status: 'queued', stage: 'queued', progress: null } },
    ]);
    expect(r.unknown).toEqual(['x']);
  });
});
