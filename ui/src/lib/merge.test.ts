import { describe, expect, it } from 'vitest';
import type { Job } from '../api/types';
import { job, jobsNewestFirst } from '../test/fixtures';
import {
  appendPage,
  applyEvent,
  compareNewest,
  insertSorted,
  mergeFirstPage,
  mergeRestJob,
  removeId,
  type LiveEvent,
} from './merge';

const progress = (j: Job, p: number | null, extra: Partial<LiveEvent['data']> = {}): LiveEvent => ({
  kind: 'progress',
  data: { jobId: j.jobId, stage: 'downloading', progress: p, speed: 2000, eta: 30, totalBytes: 5000, ...extra },
} as LiveEvent);

describe('applyEvent: progress', () => {
  it('moves a running job on and takes speed, ETA and size', () => {
    const j = job({ progress: 10 });
    const next = applyEvent(j, progress(j, 42.5));
    expect(next).toMatchObject({ progress: 42.5, speed: 2000, eta: 30, totalBytes: 5000, status: 'running' });
    expect(j.progress).toBe(10); // the old object is left alone
  });

  it('never lets progress go backwards within an attempt', () => {
    const j = job({ progress: 60 });
    expect(applyEvent(j, progress(j, 40)).progress).toBe(60);
    expect(applyEvent(j, progress(j, null)).progress).toBe(60);
  });

  it('keeps a job of unknown progress unknown', () => {
    const j = job({ progress: null });
    expect(applyEvent(j, progress(j, null)).progress).toBeNull();
  });

  it('marks a queued job running (its job-update was missed)', () => {
    const j = job({ status: 'queued', progress: null });
    expect(applyEvent(j, progress(j, 5)).status).toBe('running');
  });

  it('is ignored for a job that is no longer running', () => {
    for (const status of ['paused', 'completed', 'failed', 'cancelled'] as const) {
      const j = job({ status, progress: 30 });
      expect(applyEvent(j, progress(j, 80))).toBe(j);
    }
  });

  it('returns the same object when nothing changed (the row does not render)', () => {
    const j = job({ progress: 50, speed: 2000, eta: 30, totalBytes: 5000, stage: 'downloading' });
    expect(applyEvent(j, progress(j, 50))).toBe(j);
  });
});

describe('applyEvent: job-update', () => {
  it('carries status changes, and a new status may start progress over', () => {
    const j = job({ status: 'failed', progress: 80, errorCode: 'network', errorMessage: 'down' });
    const next = applyEvent(j, {
      kind: 'job-update',
      data: { jobId: j.jobId, status: 'queued', stage: 'queued', progress: 0 },
    });
    expect(next).toMatchObject({ status: 'queued', progress: 0, errorCode: null, errorMessage: null });
  });

  it('does not move progress back when the status stays the same', () => {
    const j = job({ status: 'running', progress: 70 });
    const next = applyEvent(j, {
      kind: 'job-update',
      data: { jobId: j.jobId, status: 'running', stage: 'merging', progress: 50 },
    });
    expect(next.progress).toBe(70);
    expect(next.stage).toBe('merging');
  });

  it('clears speed and ETA when the job stops running', () => {
    const j = job({ status: 'running', speed: 5000, eta: 10 });
    const next = applyEvent(j, {
      kind: 'job-update',
      data: { jobId: j.jobId, status: 'paused', stage: 'downloading', progress: 30 },
    });
    expect(next).toMatchObject({ status: 'paused', speed: null, eta: null });
  });
});

describe('applyEvent: completed and failed', () => {
  it('completed: final size and name, progress 100', () => {
    const j = job({ progress: 99 });
    const next = applyEvent(j, {
      kind: 'completed',
      data: { jobId: j.jobId, filename: 'a.mp4', size: 1234, outputPath: '/data/x/a.mp4' },
    });
    expect(next).toMatchObject({ status: 'completed', progress: 100, filename: 'a.mp4', size: 1234, speed: null, eta: null });
  });

  it('failed: code and message', () => {
    const j = job();
    const next = applyEvent(j, {
      kind: 'failed',
      data: { jobId: j.jobId, errorCode: 'not_found', message: 'HTTP 404' },
    });
    expect(next).toMatchObject({ status: 'failed', errorCode: 'not_found', errorMessage: 'HTTP 404', speed: null });
  });
});

describe('mergeRestJob', () => {
  it('takes the server job when the page has none', () => {
    const remote = job();
    expect(mergeRestJob(undefined, remote)).toBe(remote);
  });

  it('keeps the local object when the server says the same thing', () => {
    const local = job({ options: { format: '720p' } });
    const remote = { ...local, options: { format: '720p' } };
    expect(mergeRestJob(local, remote)).toBe(local);
  });

  it('REST is the truth for status changes', () => {
    const local = job({ status: 'running', progress: 50 });
    const remote = { ...local, status: 'completed' as const, progress: 100, filename: 'x.mp4' };
    expect(mergeRestJob(local, remote)).toMatchObject({ status: 'completed', progress: 100, filename: 'x.mp4' });
  });

  it('does not move progress back for the same running attempt (the database lags)', () => {
    const local = job({ status: 'running', progress: 70, attempts: 2, stage: 'merging' });
    const remote = { ...local, progress: 55, stage: 'downloading' as const, updatedAt: 'later' };
    const merged = mergeRestJob(local, remote);
    expect(merged.progress).toBe(70);
    expect(merged.stage).toBe('merging');
    expect(merged.updatedAt).toBe('later');
  });

  it('lets a new attempt start from zero', () => {
    const local = job({ status: 'running', progress: 70, attempts: 1 });
    const remote = { ...local, progress: 3, attempts: 2 };
    expect(mergeRestJob(local, remote).progress).toBe(3);
  });

  it('keeps live fields that events changed after the request was sent', () => {
    const local = job({ status: 'completed', progress: 100, filename: 'a.mp4' });
    const remote = { ...local, status: 'running' as const, progress: 80, filename: null, finishedAt: null };
    const merged = mergeRestJob(local, remote, true);
    expect(merged).toMatchObject({ status: 'completed', progress: 100, filename: 'a.mp4' });
  });
});

describe('list order', () => {
  const jobs = jobsNewestFirst(6);
  const byId = new Map(jobs.map((j) => [j.jobId, j]));
  const get = (id: string) => byId.get(id);
  const ids = jobs.map((j) => j.jobId);

  it('compares newest first', () => {
    expect(compareNewest(jobs[0]!, jobs[1]!)).toBeLessThan(0);
    expect(compareNewest(jobs[1]!, jobs[0]!)).toBeGreaterThan(0);
    expect(compareNewest(jobs[2]!, jobs[2]!)).toBe(0);
  });

  it('appends a next page without repeating ids', () => {
    const next = appendPage({ ids: ids.slice(0, 3), nextCursor: 'c1' }, ids.slice(2, 6), null);
    expect(next).toEqual({ ids, nextCursor: null });
  });

  it('a fresh first page replaces its range and keeps older loaded pages', () => {
    // Loaded: 6 jobs over two pages; job 1 was deleted elsewhere, a new job 0 arrived.
    const fresh = job({ createdAt: new Date(Date.parse(jobs[0]!.createdAt) + 5000).toISOString() });
    byId.set(fresh.jobId, fresh);
    const page = [fresh.jobId, ids[0]!, ids[2]!];
    const merged = mergeFirstPage({ ids, nextCursor: 'after-6' }, page, 'after-2', get);
    expect(merged.ids).toEqual([fresh.jobId, ids[0], ids[2], ids[3], ids[4], ids[5]]);
    expect(merged.nextCursor).toBe('after-6');
  });

  it('a last (only) page is the whole list', () => {
    const merged = mergeFirstPage({ ids, nextCursor: null }, [ids[1]!], null, get);
    expect(merged).toEqual({ ids: [ids[1]], nextCursor: null });
  });

  it('takes the page cursor when nothing older was loaded', () => {
    const merged = mergeFirstPage({ ids: ids.slice(0, 2), nextCursor: 'old' }, ids.slice(0, 3), 'new', get);
    expect(merged).toEqual({ ids: ids.slice(0, 3), nextCursor: 'new' });
  });

  it('inserts a job in its place, newest first', () => {
    const without = ids.filter((id) => id !== ids[2]);
    expect(insertSorted({ ids: without, nextCursor: null }, jobs[2]!, get).ids).toEqual(ids);
    const newest = job({ createdAt: '2030-01-01T00:00:00+00:00' });
    byId.set(newest.jobId, newest);
    expect(insertSorted({ ids, nextCursor: null }, newest, get).ids[0]).toBe(newest.jobId);
  });

  it('leaves a job older than the loaded range to paging', () => {
    const order = { ids: ids.slice(0, 3), nextCursor: 'more' };
    expect(insertSorted(order, jobs[5]!, get)).toBe(order);
    expect(insertSorted({ ids: ids.slice(0, 3), nextCursor: null }, jobs[5]!, get).ids.at(-1)).toBe(ids[5]);
  });

  it('does not insert twice, and removes', () => {
    const order = { ids, nextCursor: null };
    expect(insertSorted(order, jobs[0]!, get)).toBe(order);
    expect(removeId(order, ids[3]!).ids).not.toContain(ids[3]);
    expect(removeId(order, 'nope')).toBe(order);
  });
});
